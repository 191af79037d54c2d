// The client on the native (mobile) channel against the real gateway and its emulated
// providers on loopback: a first login through signup, API calls, rotation into the app's
// storage, one refresh for 50 parallel calls across an access-token expiry, a Redis outage
// the app rides out signed in, a refused refresh that signs out, identities, logout and
// account deletion.

import t, { type Test } from 'tap'
import { createGatewayClient, GatewayError, type RefreshTokenStorage, type SessionState } from '../src/index.js'
import { nativeAppAuthorization, REDIRECT_URI, startTestGateway } from '../../test/support/gateway.js'

// A 30 s access token (the least ACCESS_TOKEN_TTL allows), so a test can outlive one.
const gateway = await startTestGateway({ database: 'pglite', listen: true, env: { ACCESS_TOKEN_TTL: '30' } })
t.teardown(() => gateway.close())
const baseUrl = `http://127.0.0.1:${gateway.config.port}`
const kakao = gateway.emulated!.kakao

/** Refresh requests the gateway received. */
let refreshes = 0
gateway.app.server.on('request', (request) => {
  if (request.method === 'POST' && request.url === '/auth/token') refreshes++
})

/** An in-memory stand-in for Keychain/SecureStore, recording what the client kept. */
function memoryStorage() {
  const kept: (string | null)[] = []
  let value: string | null = null
  const storage: RefreshTokenStorage = {
    get: async () => value,
    set: async (token) => void kept.push((value = token)),
    delete: async () => void kept.push((value = null)),
  }
  return { storage, kept, current: () => value }
}

/** A new app install whose user signs up with Kakao (member `id`) through the client. */
async function signedUpClient(t: Test, id: string) {
  const { storage, kept, current } = memoryStorage()
  const changes: SessionState[] = []
  const client = createGatewayClient({ baseUrl, platform: 'native', storage, onChange: (state) => changes.push(state), retry: { attempts: 8, baseDelayMs: 100, maxDelayMs: 800 } })
  const { authorizationUrl, state } = await client.startLogin('kakao', REDIRECT_URI)
  const code = (await kakao.authorize(authorizationUrl, { id })).searchParams.get('code')!
  const first = await client.login('kakao', { code, state, redirectUri: REDIRECT_URI })
  t.equal(first.status, 'signup_required', 'a new member is asked to sign up')
  if (first.status !== 'signup_required') throw new Error('expected signup')
  const done = await client.finishSignup({ nickname: `member ${id}` }, first.signupToken)
  t.equal(done.status, 'authenticated')
  return { client, kept, current, changes }
}

t.test('a first login through signup: signed in, the refresh token in storage, APIs answer', async (t) => {
  const { client, current, changes } = await signedUpClient(t, '9100001')
  t.same(changes, ['signed_in'], 'told once that the session started')
  t.match(current(), /^[A-Za-z0-9_-]{100,}$/, 'the refresh token is in the app storage')
  const me = await client.me()
  t.equal(me.nickname, 'member 9100001')
  t.same(me.identities.map((identity) => identity.provider), ['kakao'])
})

t.test('each refresh rotates the stored token', async (t) => {
  const { client, current } = await signedUpClient(t, '9100002')
  const before = current()
  await client.refresh()
  t.not(current(), before, 'a new refresh token replaced the old one')
  t.equal((await client.me()).nickname, 'member 9100002')
})

t.test('50 parallel API calls across an access-token expiry cause exactly one refresh', async (t) => {
  const { client } = await signedUpClient(t, '9100003')
  // The access token lives 30 s; the client refreshes 5 s before it ends.
  await new Promise((resolve) => setTimeout(resolve, 25_500))
  const before = refreshes
  const answers = await Promise.all(Array.from({ length: 50 }, () => client.fetch(`${baseUrl}/auth/me`)))
  t.same([...new Set(answers.map((answer) => answer.status))], [200], 'every call answered')
  t.equal(refreshes - before, 1, 'one refresh for all fifty')
})

t.test('a Redis outage during refreshes: retried with backoff, the app stays signed in', async (t) => {
  const { client, changes, current } = await signedUpClient(t, '9100004')
  const kept = current()
  gateway.testRedis.pause()
  let resumed = false
  setTimeout(() => {
    resumed = true
    gateway.testRedis.resume()
  }, 3_000).unref()
  t.teardown(() => gateway.testRedis.resume())
  const before = refreshes
  const token = await client.refresh()
  t.ok(resumed, 'the refresh succeeded only once Redis was back')
  t.ok(refreshes - before > 1, `the refresh was retried (${refreshes - before} requests)`)
  t.match(token, /^ey/)
  t.not(current(), kept, 'the rotated token is stored')
  t.same(changes, ['signed_in'], 'never signed out by the outage')
})

t.test('a Redis outage longer than the retries: the refresh fails with 503, the session kept', async (t) => {
  const { client, changes, current } = await signedUpClient(t, '9100005')
  const kept = current()
  const patient = createGatewayClient({ baseUrl, platform: 'native', storage: { get: async () => current(), set: async () => {}, delete: async () => {} }, retry: { attempts: 2, baseDelayMs: 50, maxDelayMs: 50 } })
  gateway.testRedis.pause()
  t.teardown(() => gateway.testRedis.resume())
  const failure = await patient.refresh().catch((error: unknown) => error)
  gateway.testRedis.resume()
  t.ok(failure instanceof GatewayError && failure.status === 503, 'a 503, not a 401')
  t.equal(current(), kept, 'the stored token was not thrown away')
  t.equal((await client.me()).nickname, 'member 9100005', 'and the session goes on')
  t.same(changes, ['signed_in'])
})

t.test('a refused refresh (the session was ended elsewhere) signs out, once', async (t) => {
  const { client, changes, current } = await signedUpClient(t, '9100006')
  const me = await client.me()
  await gateway.services.sessions.endAll(me.id, 'test', {})
  const failure = await client.refresh().catch((error: unknown) => error)
  t.ok(failure instanceof GatewayError && failure.status === 401, 'the refresh is refused')
  t.same(changes, ['signed_in', 'signed_out'], 'told once that the session ended')
  t.equal(current(), null, 'the refresh token was removed from storage')
  t.equal(client.sessionState, 'signed_out')
})

t.test('link and unlink a provider, log out, and delete the account', async (t) => {
  const { client, current, changes } = await signedUpClient(t, '9100007')
  const google = await nativeAppAuthorization(gateway, { sub: 'client-google-7', email: 'c7@example.com' })
  const identities = await client.link('google', { code: google.code, codeVerifier: google.codeVerifier, nonce: google.nonce, redirectUri: google.redirectUri })
  t.same(identities.map((identity) => identity.provider).sort(), ['google', 'kakao'])
  await client.unlink(identities.find((identity) => identity.provider === 'google')!.id)
  t.same((await client.me()).identities.map((identity) => identity.provider), ['kakao'])

  const refreshToken = current()
  await client.logout()
  t.equal(current(), null, 'logout removes the stored token')
  const reused = await fetch(`${baseUrl}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }) })
  t.equal(reused.status, 401, 'the session ended at the gateway too')
  t.same(changes, ['signed_in', 'signed_out'])

  const again = await signedUpClient(t, '9100008')
  await again.client.deleteAccount()
  t.equal(again.client.sessionState, 'signed_out')
  const gone = await again.client.me().catch((error: unknown) => error)
  t.ok(gone instanceof GatewayError && gone.status === 401, 'signed out after deletion')
})
