// The Naver emulator's ways of ending an application's tokens, driven over real HTTP as the
// gateway drives them when an account is deleted: POST /oauth2.0/revoke (200 with an empty
// body, even for a token it does not know) and the legacy grant_type=delete at the token
// endpoint (errors with HTTP 200). Each revocation of a live token is recorded once; the
// tokens die (profile 024, refresh refused); injected faults answer instead.

import t from 'tap'
import { startNaverEmulator, type NaverAccount } from '../../emulators/naver.js'

const app = { clientId: 'naverRevokeClient', clientSecret: 'naverRevokeSecret' }
const redirectUri = 'http://127.0.0.1:3999/auth/callback/naver'
/** client_secret_post, as Naver wants it. */
const creds = { client_id: app.clientId, client_secret: app.clientSecret }

const naver = await startNaverEmulator({ ...app, redirectUris: [redirectUri] })
t.teardown(() => naver.stop())
t.beforeEach(() => naver.clearFaults())

let nextId = 7_100_000_001
const account = (): NaverAccount => ({ id: String(nextId++), nickname: 'Leaving' })

async function post(path: string, form: Record<string, string>, init: RequestInit = {}) {
  const res = await fetch(`${naver.authUrl}${path}`, { method: 'POST', body: new URLSearchParams(form), ...init })
  const text = await res.text()
  return { status: res.status, text }
}

/** A web login: consent at Naver, then the code at the token endpoint. */
async function login(who: NaverAccount) {
  const url = new URL('/oauth2.0/authorize', naver.authUrl)
  url.search = new URLSearchParams({ response_type: 'code', client_id: app.clientId, redirect_uri: redirectUri, state: 'st' }).toString()
  const callback = await naver.authorize(url, who)
  const answer = await post('/oauth2.0/token', { grant_type: 'authorization_code', ...creds, code: callback.searchParams.get('code')!, state: 'st' })
  const tokens = JSON.parse(answer.text) as { access_token: string; refresh_token: string }
  return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token }
}

const revoke = (token: string, extra: Record<string, string> = {}, init?: RequestInit) =>
  post('/oauth2.0/revoke', { ...creds, token, ...extra }, init)

const legacyDelete = (accessToken: string, extra: Record<string, string> = {}) =>
  post('/oauth2.0/token', { grant_type: 'delete', ...creds, access_token: accessToken, service_provider: 'NAVER', ...extra })

async function profile(accessToken: string) {
  const res = await fetch(`${naver.apiUrl}/v1/nid/me`, { headers: { authorization: `Bearer ${accessToken}` } })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

async function refresh(refreshToken: string) {
  const answer = await post('/oauth2.0/token', { grant_type: 'refresh_token', ...creds, refresh_token: refreshToken })
  return { status: answer.status, body: JSON.parse(answer.text) as Record<string, unknown> }
}

const since = (before: number) => naver.revocations().slice(before)

t.test('revoking the refresh token: 200 empty, recorded once, both tokens dead', async (t) => {
  const who = account()
  const tokens = await login(who)
  t.equal((await profile(tokens.accessToken)).status, 200, 'the access token works before')
  const before = naver.revocations().length

  t.same(await revoke(tokens.refreshToken, { token_type_hint: 'refresh_token' }), { status: 200, text: '' })
  t.same(since(before), [{ token: 'refresh_token', accountId: who.id, via: 'revoke' }])
  t.match(await profile(tokens.accessToken), { status: 401, body: { resultcode: '024' } }, 'the access token of the pair is dead')
  t.match(await refresh(tokens.refreshToken), { status: 200, body: { error: 'invalid_request' } }, 'the refresh token is refused')

  t.same(await revoke(tokens.refreshToken), { status: 200, text: '' }, 'again: still 200, empty')
  t.same(await revoke('never-issued'), { status: 200, text: '' }, 'an unknown token: 200, empty')
  t.equal(since(before).length, 1, 'neither is recorded')
})

t.test('revoking the access token ends the refresh token too', async (t) => {
  const who = account()
  const tokens = await login(who)
  const before = naver.revocations().length
  t.same(await revoke(tokens.accessToken), { status: 200, text: '' })
  t.same(since(before), [{ token: 'access_token', accountId: who.id, via: 'revoke' }])
  t.equal((await profile(tokens.accessToken)).status, 401)
  t.match(await refresh(tokens.refreshToken), { body: { error: 'invalid_request' } })
})

t.test('refused revocations: nothing recorded, the tokens live on', async (t) => {
  const who = account()
  const tokens = await login(who)
  const before = naver.revocations().length

  const wrongSecret = await post('/oauth2.0/revoke', { client_id: app.clientId, client_secret: 'wrong', token: tokens.refreshToken })
  t.equal(wrongSecret.status, 401)
  t.match(JSON.parse(wrongSecret.text), { error: 'unauthorized_client' })
  const noToken = await post('/oauth2.0/revoke', { ...creds })
  t.equal(noToken.status, 400)
  const get = await fetch(`${naver.authUrl}/oauth2.0/revoke?${new URLSearchParams({ ...creds, token: tokens.refreshToken })}`)
  t.equal(get.status, 405)
  await get.text()

  // Another application's token is not ours to revoke: 200 (as for any token), and it lives on.
  const foreign = naver.sdkLogin(who, 'another-naver-app')
  t.same(await revoke(foreign), { status: 200, text: '' })
  t.equal((await profile(foreign)).status, 200, 'the other application’s token still works')

  t.same(since(before), [])
  t.equal((await profile(tokens.accessToken)).status, 200)
  t.match(await refresh(tokens.refreshToken), { body: { access_token: String } })
})

t.test('the legacy grant_type=delete: {access_token, result: success}, recorded, both tokens dead', async (t) => {
  const who = account()
  const tokens = await login(who)
  const before = naver.revocations().length
  const answer = await legacyDelete(tokens.accessToken)
  t.equal(answer.status, 200)
  t.same(JSON.parse(answer.text), { access_token: tokens.accessToken, result: 'success' })
  t.same(since(before), [{ token: 'access_token', accountId: who.id, via: 'delete' }])
  t.match(await profile(tokens.accessToken), { status: 401, body: { resultcode: '024' } })
  t.match(await refresh(tokens.refreshToken), { body: { error: 'invalid_request' } })

  const again = await legacyDelete(tokens.accessToken)
  t.equal(again.status, 200, 'Naver answers token errors with HTTP 200')
  t.match(JSON.parse(again.text), { error: 'invalid_request', error_description: String })
  t.notOk('result' in JSON.parse(again.text))
  t.equal(since(before).length, 1)
})

t.test('the legacy delete refuses what Naver refuses, with HTTP 200 errors', async (t) => {
  const who = account()
  const tokens = await login(who)
  const before = naver.revocations().length
  const refusals: [string, Record<string, string>, string][] = [
    ['no service_provider', { service_provider: '' }, 'invalid_request'],
    ['another service_provider', { service_provider: 'KAKAO' }, 'invalid_request'],
    ['no access_token', { access_token: '' }, 'invalid_request'],
    ['a refresh token as access_token', { access_token: tokens.refreshToken }, 'invalid_request'],
    ['an unknown access_token', { access_token: 'AAAAunknown' }, 'invalid_request'],
    ['a wrong client secret', { client_secret: 'wrong' }, 'invalid_request'],
  ]
  for (const [what, edit, error] of refusals) {
    const form: Record<string, string> = { grant_type: 'delete', ...creds, access_token: tokens.accessToken, service_provider: 'NAVER', ...edit }
    for (const [name, value] of Object.entries(edit)) if (value === '') delete form[name]
    const answer = await post('/oauth2.0/token', form)
    t.equal(answer.status, 200, what)
    t.match(JSON.parse(answer.text), { error, error_description: String }, what)
  }
  t.same(since(before), [])
  t.equal((await profile(tokens.accessToken)).status, 200, 'the token still works')
})

t.test('an expired access token: delete refuses it; revoke ends the live refresh token of its pair', async (t) => {
  const expiring = await startNaverEmulator({ ...app, redirectUris: [redirectUri], accessTokenTtl: 0 })
  t.teardown(() => expiring.stop())
  const url = new URL('/oauth2.0/authorize', expiring.authUrl)
  url.search = new URLSearchParams({ response_type: 'code', client_id: app.clientId, redirect_uri: redirectUri, state: 'st' }).toString()
  const who = account()
  const code = (await expiring.authorize(url, who)).searchParams.get('code')!
  const tokenAt = (form: Record<string, string>) =>
    fetch(`${expiring.authUrl}/oauth2.0/token`, { method: 'POST', body: new URLSearchParams({ ...creds, ...form }) }).then(async (r) => [r.status, (await r.json()) as Record<string, string>] as const)
  const [, tokens] = await tokenAt({ grant_type: 'authorization_code', code, state: 'st' })

  const [status, refused] = await tokenAt({ grant_type: 'delete', access_token: tokens.access_token!, service_provider: 'NAVER' })
  t.equal(status, 200)
  t.match(refused, { error: 'invalid_request' }, 'an expired access token must be refreshed first')
  t.same(expiring.revocations(), [])

  const revoked = await fetch(`${expiring.authUrl}/oauth2.0/revoke`, { method: 'POST', body: new URLSearchParams({ ...creds, token: tokens.access_token! }) })
  t.equal(revoked.status, 200)
  await revoked.text()
  t.same(expiring.revocations(), [{ token: 'access_token', accountId: who.id, via: 'revoke' }], 'its refresh token still worked')
  t.match((await tokenAt({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }))[1], { error: 'invalid_request' })
})

t.test('faults at /oauth2.0/revoke: the fault answers, nothing is revoked', async (t) => {
  const who = account()
  const tokens = await login(who)
  const before = naver.revocations().length
  const revokesBefore = naver.requests.revoke

  naver.failNext('revoke', { kind: 'down' })
  const down = await revoke(tokens.refreshToken)
  t.equal(down.status, 503)
  t.match(down.text, '503 Service Temporarily Unavailable')

  naver.failNext('revoke', { kind: 'error', error: 'server_error', status: 500 }, 2)
  for (let i = 0; i < 2; i++) t.same(await revoke(tokens.refreshToken), { status: 500, text: '{"error":"server_error","error_description":"server_error"}' })

  naver.failNext('revoke', { kind: 'disconnect' })
  await t.rejects(revoke(tokens.refreshToken), 'the connection is closed without an answer')

  naver.failNext('revoke', { kind: 'slow', delayMs: 1000 })
  await t.rejects(revoke(tokens.refreshToken, {}, { signal: AbortSignal.timeout(200) }), { name: 'TimeoutError' })
  naver.clearFaults()

  t.equal(naver.requests.revoke - revokesBefore, 5, 'every call reached the emulator')
  t.same(since(before), [], 'no faulted call revoked anything')
  t.equal((await profile(tokens.accessToken)).status, 200, 'the tokens still work')

  // The token endpoint's faults cover the legacy delete.
  naver.failNext('token', { kind: 'down' })
  t.equal((await legacyDelete(tokens.accessToken)).status, 503)
  t.same(since(before), [])

  t.same(await revoke(tokens.refreshToken), { status: 200, text: '' }, 'without faults the revocation goes through')
  t.same(since(before), [{ token: 'refresh_token', accountId: who.id, via: 'revoke' }])
})
