// The Kakao emulator's unlink API (kapi POST /v1/user/unlink), driven over real HTTP as the
// gateway drives it when an account is deleted: with the admin key or the member's access
// token, Kakao's `{msg, code}` errors (-401, -2, -101), the member's tokens dead afterwards,
// each unlink recorded once, and injected faults in place of the answer.

import t from 'tap'
import { DEFAULT_KAKAO_ADMIN_KEY, startKakaoEmulator, type KakaoAccount } from '../../emulators/kakao.js'

const app = { clientId: 'kakao-rest-key', clientSecret: 'kakao-secret', appId: '1234567' }
const redirectUri = 'http://127.0.0.1:3999/auth/callback/kakao'
const adminKey = 'test-admin-key'

const kakao = await startKakaoEmulator({ ...app, redirectUris: [redirectUri], adminKey })
t.teardown(() => kakao.stop())

// Above 2^53, as Kakao's own sample: the answer must carry it digit for digit.
let nextMember = 1376016924429759228n
const member = (): KakaoAccount => ({ id: String(nextMember++), nickname: 'Unlinker', email: 'u@example.com' })

async function unlink(authorization: string | undefined, form?: Record<string, string>, init: RequestInit = {}) {
  const headers: Record<string, string> = {}
  if (authorization !== undefined) headers.authorization = authorization
  if (form) headers['content-type'] = 'application/x-www-form-urlencoded;charset=utf-8'
  const res = await fetch(`${kakao.apiUrl}/v1/user/unlink`, { method: 'POST', headers, body: form ? new URLSearchParams(form) : undefined, ...init })
  const text = await res.text()
  return { status: res.status, text, challenge: res.headers.get('www-authenticate') }
}

const byAdmin = (id: string, key = adminKey) => unlink(`KakaoAK ${key}`, { target_id_type: 'user_id', target_id: id })

async function profileStatus(accessToken: string) {
  const res = await fetch(`${kakao.apiUrl}/v2/user/me`, { headers: { authorization: `Bearer ${accessToken}` } })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

async function refresh(refreshToken: string) {
  const res = await fetch(`${kakao.authUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8' },
    body: new URLSearchParams({ grant_type: 'refresh_token', client_id: app.clientId, client_secret: app.clientSecret, refresh_token: refreshToken }),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** The unlinks recorded since `before` (a length of unlinks()). */
const since = (before: number) => kakao.unlinks().slice(before)

t.test('the admin key: an emulator exposes it; the default one is fixed', async (t) => {
  t.equal(kakao.adminKey, adminKey)
  t.equal(DEFAULT_KAKAO_ADMIN_KEY, 'emulated-kakao-admin-key')
  const plain = await startKakaoEmulator({ ...app, redirectUris: [redirectUri] })
  t.teardown(() => plain.stop())
  t.equal(plain.adminKey, DEFAULT_KAKAO_ADMIN_KEY)
})

t.test('unlink with the admin key: {"id"} with the raw Long, recorded once, the tokens die', async (t) => {
  const account = member()
  const tokens = await kakao.sdkLogin(account)
  t.equal((await profileStatus(tokens.accessToken)).status, 200, 'the token works before')
  const before = kakao.unlinks().length

  const answer = await byAdmin(account.id)
  t.equal(answer.status, 200)
  t.equal(answer.text, `{"id":${account.id}}`, 'the id is a raw JSON number, every digit kept')
  t.same(since(before), [{ memberId: account.id, by: 'admin_key' }])
  t.match(kakao.requests.at(-1), {
    endpoint: 'unlink',
    method: 'POST',
    authorization: `KakaoAK ${adminKey}`,
    form: { target_id_type: 'user_id', target_id: account.id },
  })

  t.match(await profileStatus(tokens.accessToken), { status: 401, body: { code: -401 } }, 'the access token is dead')
  t.match(await refresh(tokens.refreshToken), { status: 400, body: { error_code: 'KOE322' } }, 'so is the refresh token')

  const again = await byAdmin(account.id)
  t.equal(again.status, 400, 'already unlinked')
  t.same(JSON.parse(again.text), { msg: 'NotRegisteredUserException', code: -101 })
  t.equal(since(before).length, 1, 'the refused second unlink is not recorded')

  // Logging in again links the member anew; the unlink works again.
  await kakao.sdkLogin(account)
  t.equal((await byAdmin(account.id)).status, 200)
  t.same(since(before), [{ memberId: account.id, by: 'admin_key' }, { memberId: account.id, by: 'admin_key' }])
})

t.test('the target may be in the query string too', async (t) => {
  const account = member()
  await kakao.sdkLogin(account)
  const before = kakao.unlinks().length
  const res = await fetch(`${kakao.apiUrl}/v1/user/unlink?target_id_type=user_id&target_id=${account.id}`, { method: 'POST', headers: { authorization: `KakaoAK ${adminKey}` } })
  t.equal(res.status, 200)
  t.equal(await res.text(), `{"id":${account.id}}`)
  t.same(since(before), [{ memberId: account.id, by: 'admin_key' }])
})

t.test('unlink with the member’s access token', async (t) => {
  const account = member()
  const other = member()
  const tokens = await kakao.sdkLogin(account)
  const bystander = await kakao.sdkLogin(other)
  const before = kakao.unlinks().length

  const answer = await unlink(`Bearer ${tokens.accessToken}`)
  t.equal(answer.status, 200)
  t.equal(answer.text, `{"id":${account.id}}`)
  t.same(since(before), [{ memberId: account.id, by: 'access_token' }])
  t.equal((await profileStatus(tokens.accessToken)).status, 401, 'the token is dead')
  t.equal((await profileStatus(bystander.accessToken)).status, 200, 'another member is untouched')

  const again = await unlink(`Bearer ${tokens.accessToken}`)
  t.equal(again.status, 401)
  t.same(JSON.parse(again.text), { msg: 'this access token does not exist', code: -401 })
  t.equal(again.challenge, 'Bearer error=invalid_token')
  t.equal((await byAdmin(account.id)).status, 400, 'and the member is no longer linked')
  t.equal(since(before).length, 1)
})

t.test('a login through the consent screen links the member, even before the code is redeemed', async (t) => {
  const account = member()
  const url = new URL('/oauth/authorize', kakao.authUrl)
  url.search = new URLSearchParams({ client_id: app.clientId, redirect_uri: redirectUri, response_type: 'code', state: 's' }).toString()
  t.ok((await kakao.authorize(url, account)).searchParams.get('code'))
  const before = kakao.unlinks().length
  t.equal((await byAdmin(account.id)).status, 200)
  t.same(since(before), [{ memberId: account.id, by: 'admin_key' }])
})

t.test('refusals: Kakao’s error shapes, nothing recorded, nobody unlinked', async (t) => {
  const account = member()
  const tokens = await kakao.sdkLogin(account)
  const before = kakao.unlinks().length

  const wrongKey = await byAdmin(account.id, 'not-the-admin-key')
  t.equal(wrongKey.status, 401)
  t.match(JSON.parse(wrongKey.text), { msg: String, code: -401 })
  t.same(Object.keys(JSON.parse(wrongKey.text)).sort(), ['code', 'msg'])

  const noKey = await unlink(undefined, { target_id_type: 'user_id', target_id: account.id })
  t.equal(noKey.status, 401)
  t.match(JSON.parse(noKey.text), { code: -401 })

  const restKey = await unlink(`KakaoAK ${app.clientId}`, { target_id_type: 'user_id', target_id: account.id })
  t.equal(restKey.status, 401, 'the REST API key is not the admin key')

  const badParams: [string, Record<string, string> | undefined][] = [
    ['no parameters', undefined],
    ['no target_id', { target_id_type: 'user_id' }],
    ['no target_id_type', { target_id: account.id }],
    ['another target_id_type', { target_id_type: 'app_user_id', target_id: account.id }],
    ['a target_id that is not a number', { target_id_type: 'user_id', target_id: 'abc' }],
    ['a target_id above a Long', { target_id_type: 'user_id', target_id: '9223372036854775808' }],
  ]
  for (const [what, form] of badParams) {
    const answer = await unlink(`KakaoAK ${adminKey}`, form)
    t.equal(answer.status, 400, what)
    t.match(JSON.parse(answer.text), { msg: String, code: -2 }, what)
  }

  const stranger = await byAdmin('4999999999')
  t.equal(stranger.status, 400, 'a member who never logged in')
  t.same(JSON.parse(stranger.text), { msg: 'NotRegisteredUserException', code: -101 })

  const get = await fetch(`${kakao.apiUrl}/v1/user/unlink?target_id_type=user_id&target_id=${account.id}`, { headers: { authorization: `KakaoAK ${adminKey}` } })
  t.equal(get.status, 405, 'POST only')
  await get.text()

  t.same(since(before), [], 'nothing was recorded')
  t.equal((await profileStatus(tokens.accessToken)).status, 200, 'the member is still linked: the token works')
})

t.test('a member who unlinked the app themselves is not linked: -101', async (t) => {
  const account = member()
  await kakao.sdkLogin(account)
  const before = kakao.unlinks().length
  kakao.revokeConsent(account.id)
  const answer = await byAdmin(account.id)
  t.equal(answer.status, 400)
  t.same(JSON.parse(answer.text), { msg: 'NotRegisteredUserException', code: -101 })
  t.same(since(before), [])
})

t.test('a token of another Kakao app unlinks the member from that app only', async (t) => {
  const account = member()
  const ours = await kakao.sdkLogin(account)
  const theirs = await kakao.sdkLogin(account, { appId: '7654321' })
  t.equal((await unlink(`Bearer ${theirs.accessToken}`)).status, 200)
  t.equal((await profileStatus(ours.accessToken)).status, 200, 'our app’s token still works')
  t.equal((await byAdmin(account.id)).status, 200, 'and the member is still linked to our app')
})

t.test('faults: the injected answer instead, nothing unlinked; down() refuses connections', async (t) => {
  const account = member()
  const tokens = await kakao.sdkLogin(account)
  const before = kakao.unlinks().length

  kakao.fail('unlink', { kind: 'status', status: 500, body: { msg: 'internal error', code: -1 } })
  const failed = await byAdmin(account.id)
  t.equal(failed.status, 500)
  t.same(JSON.parse(failed.text), { msg: 'internal error', code: -1 })

  kakao.fail('unlink', { kind: 'status', status: 503 }, 2)
  t.equal((await byAdmin(account.id)).status, 503)
  t.equal((await unlink(`Bearer ${tokens.accessToken}`)).status, 503, 'the bearer form is faulted too')

  kakao.fail('unlink', { kind: 'closed' })
  await t.rejects(byAdmin(account.id), 'a closed connection')

  kakao.fail('unlink', { kind: 'hang' })
  const hanging = unlink(`KakaoAK ${adminKey}`, { target_id_type: 'user_id', target_id: account.id }, { signal: AbortSignal.timeout(300) })
  await t.rejects(hanging, { name: 'TimeoutError' }, 'no answer at all')
  kakao.clearFaults()

  await kakao.down()
  await t.rejects(byAdmin(account.id), 'connection refused while down')
  await kakao.up()

  t.same(since(before), [], 'no faulted call unlinked anyone')
  t.equal((await profileStatus(tokens.accessToken)).status, 200, 'the member is still linked')
  t.equal((await byAdmin(account.id)).status, 200, 'once the faults are gone, the unlink goes through')
  t.same(since(before), [{ memberId: account.id, by: 'admin_key' }])
})

t.test('a slow answer is a real unlink, only late: the next call finds the member gone (-101)', async (t) => {
  const account = member()
  await kakao.sdkLogin(account)
  const before = kakao.unlinks().length
  kakao.fail('unlink', { kind: 'slow', delayMs: 200 })
  t.equal((await byAdmin(account.id)).status, 200)
  t.equal((await byAdmin(account.id)).text, '{"msg":"NotRegisteredUserException","code":-101}')
  t.same(since(before), [{ memberId: account.id, by: 'admin_key' }])
})
