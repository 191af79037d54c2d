// The client on the native (mobile) channel, in Node, against the real gateway and its
// emulated providers on loopback: a first login through signup, the refresh token in the
// app's storage (rotated on every refresh, gone after logout), a relaunch, one refresh for 50
// parallel calls (across a real access-token expiry, and on an API's 401), a Redis outage
// the app rides out signed in, a refused refresh that signs out, native SDK credentials,
// identities, logout, logout everywhere and account deletion.

import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { accessTokenVerifier } from '../../verifier/index.js'
import { nativeAppAuthorization, REDIRECT_URI } from '../../test/support/gateway.js'
import { createGatewayClient, GatewayError, type GatewayClientOptions, type RefreshTokenStorage, type SessionEvent, type SignedOutReason } from '../src/index.js'
import { countedGateway, sleep } from './support.js'

const counted = await countedGateway()
const { gateway, refreshes } = counted
t.teardown(() => gateway.close())
// No Origin header from here: the mobile channel. 127.0.0.1, not localhost (::1 first on some hosts).
const baseUrl = `http://127.0.0.1:${gateway.config.port}`
const kakao = gateway.emulated!.kakao

// An API of the app's own, protected by the repository's verifier. It can be told to refuse
// particular access tokens with 401 invalid_token (as an API does whose clock runs ahead).
const refused = new Set<string>()
let apiCalls = 0
const api = Fastify()
api.addHook('onRequest', async () => void apiCalls++)
await api.register(accessTokenVerifier, { issuer: gateway.config.publicUrl, audience: gateway.config.tokenAudience, jwksUri: `${baseUrl}/.well-known/jwks.json` })
api.get('/orders', { preHandler: api.authenticate }, async (request, reply) => {
  if (refused.has(request.headers.authorization!.slice('Bearer '.length))) {
    return reply.code(401).header('www-authenticate', 'Bearer error="invalid_token"').send({ error: 'invalid_token', message: 'expired' })
  }
  return { for: request.accessToken!.sub }
})
await api.listen({ port: 0, host: '127.0.0.1' })
t.teardown(() => api.close())
const orders = `http://127.0.0.1:${(api.server.address() as { port: number }).port}/orders`

/** An in-memory stand-in for Keychain/SecureStore that records what the client wrote. */
function memoryStorage() {
  const writes: (string | null)[] = []
  let value: string | null = null
  const storage: RefreshTokenStorage = {
    get: async () => value,
    set: async (token) => void writes.push((value = token)),
    delete: async () => void writes.push((value = null)),
  }
  return { storage, writes, current: () => value }
}

function nativeClient(options: Partial<GatewayClientOptions> = {}) {
  const memory = memoryStorage()
  const events: SessionEvent[] = []
  const signedOut: SignedOutReason[] = []
  const client = createGatewayClient({
    baseUrl,
    platform: 'native',
    storage: memory.storage,
    onSignedOut: (reason) => signedOut.push(reason),
    ...options,
  })
  client.subscribe((event) => events.push(event))
  return { client, ...memory, events, signedOut }
}

/** A new install whose user logs in with Kakao (member `id`) through the gateway-started flow and signs up. */
async function signedUp(t: Test, id: string, options: Partial<GatewayClientOptions> = {}) {
  const app = nativeClient(options)
  const { authorizationUrl, state } = await app.client.startLogin('kakao', { redirectUri: REDIRECT_URI })
  const back = await kakao.authorize(authorizationUrl, { id })
  t.equal(back.searchParams.get('state'), state, 'the provider brings the state back')
  const first = await app.client.finishLogin('kakao', { code: back.searchParams.get('code')!, state, redirectUri: REDIRECT_URI })
  if (first.status !== 'signup_required') throw new Error(`expected signup, got ${first.status}`)
  t.same(first.missing, ['nickname'], 'a Kakao member without a nickname is asked for one')
  t.equal(app.current(), null, 'no session before signup')
  const done = await app.client.finishSignup({ signupToken: first.signupToken, nickname: `member ${id}` })
  t.equal(done.isNewUser, true)
  return app
}

// Logged in first, so that its access token is near its end when the last test runs.
let expiring: { app: Awaited<ReturnType<typeof signedUp>>; loggedInAt: number } | undefined

t.test('a first login through signup: signed in, the refresh token in storage, APIs answer', async (t) => {
  const app = await signedUp(t, '9100001')
  expiring = { app, loggedInAt: Date.now() }
  t.same(app.events, [{ state: 'signed_in' }], 'told once that the session started')
  t.equal(app.client.state, 'signed_in')
  t.match(app.current(), /^[A-Za-z0-9_-]{100,}$/, 'the refresh token is in the app storage')
  const me = await app.client.me()
  t.equal(me.nickname, 'member 9100001')
  t.same((await app.client.identities()).map((identity) => identity.provider), ['kakao'])
  const answer = await app.client.fetch(orders)
  t.same(await answer.json(), { for: me.id }, "the app's own API gets the access token")
})

t.test('every refresh rotates the stored token; a relaunch restores the session from storage', async (t) => {
  const app = await signedUp(t, '9100002')
  const seen = [app.current()]
  for (let i = 0; i < 3; i++) {
    await app.client.refresh()
    seen.push(app.current())
  }
  t.equal(new Set(seen).size, 4, 'a new refresh token each time, each one stored')
  const before = refreshes.length
  await app.client.refresh()
  t.equal(refreshes.length - before, 1)
  // The app is killed and started again: only the storage survives.
  const relaunched = createGatewayClient({ baseUrl, platform: 'native', storage: app.storage })
  t.equal(relaunched.state, 'unknown')
  t.equal(await relaunched.restore(), 'signed_in')
  t.equal((await relaunched.me()).nickname, 'member 9100002')
  const fresh = nativeClient()
  t.equal(await fresh.client.restore(), 'signed_out', 'an install without a stored token is signed out')
  t.same(fresh.events, [{ state: 'signed_out', reason: 'no_session' }])
  t.same(fresh.signedOut, [], 'nothing ended')
})

t.test("50 parallel API calls that the API answers 401 invalid_token cause exactly one refresh and one retry each", async (t) => {
  const app = await signedUp(t, '9100004')
  const stale = await app.client.getAccessToken()
  refused.add(stale)
  t.teardown(() => refused.delete(stale))
  const calls = apiCalls
  const before = refreshes.length
  const answers = await Promise.all(Array.from({ length: 50 }, () => app.client.fetch(orders)))
  t.same([...new Set(answers.map((answer) => answer.status))], [200], 'every call answered after its retry')
  t.same(refreshes.slice(before), [200], 'one refresh for all fifty')
  t.equal(apiCalls - calls, 100, 'each call went to the API twice: refused, then with the new token')
})

t.test('a Redis outage: refreshes get 503s and are retried with backoff, the app stays signed in, and recovers', async (t) => {
  const app = await signedUp(t, '9100005', { retry: { attempts: 4, baseDelayMs: 50, maxDelayMs: 200 } })
  const kept = app.current()
  t.teardown(() => counted.redisBack())
  await counted.redisDown()

  // Retries run out while Redis stays down: a transient error, nothing thrown away.
  let before = refreshes.length
  const failure = await app.client.refresh().catch((error: unknown) => error)
  t.ok(failure instanceof GatewayError && failure.status === 503 && failure.transient, 'the refresh fails with 503')
  t.same(refreshes.slice(before), [503, 503, 503, 503], 'after four attempts')
  t.equal(app.client.state, 'signed_in', 'still signed in')
  t.equal(app.current(), kept, 'the stored refresh token was kept')
  // The access token is still good: the app goes on calling its API, which needs no Redis.
  t.equal((await app.client.fetch(orders)).status, 200, "the app's API keeps answering")

  // A patient client: Redis comes back after the first 503, and a retry succeeds.
  const patient = createGatewayClient({ baseUrl, platform: 'native', storage: app.storage, retry: { attempts: 30, baseDelayMs: 100, maxDelayMs: 400 } })
  let restarted: Promise<void> | undefined
  counted.onRefresh = (status) => {
    if (status === 503) restarted ??= counted.redisBack()
  }
  t.teardown(() => void (counted.onRefresh = undefined))
  before = refreshes.length
  const token = await patient.refresh()
  await restarted
  const during = refreshes.slice(before)
  t.ok(during.length >= 2 && during.at(-1) === 200 && during.slice(0, -1).every((status) => status === 503), `503s, then a success (${during.join(' ')})`)
  t.match(token, /^ey/)
  t.not(app.current(), kept, 'the rotated token is stored')
  t.equal((await app.client.refresh(), app.client.state), 'signed_in', 'and the first client refreshes too')
  t.same(app.events, [{ state: 'signed_in' }], 'never signed out by the outage')
  t.same(app.signedOut, [])
})

t.test('a refused refresh (the session was ended elsewhere) signs out, once', async (t) => {
  const app = await signedUp(t, '9100006')
  const me = await app.client.me()
  await gateway.services.sessions.endAll(me.id, 'test', {})
  const failure = await app.client.refresh().catch((error: unknown) => error)
  t.ok(failure instanceof GatewayError && failure.status === 401 && failure.error === 'invalid_grant', 'the refresh is refused')
  t.same(app.signedOut, ['session_ended'], 'told once that the session ended')
  t.same(app.events, [{ state: 'signed_in' }, { state: 'signed_out', reason: 'session_ended' }])
  t.equal(app.current(), null, 'the refresh token was removed from storage')
  const again = await app.client.me().catch((error: unknown) => error)
  t.ok(again instanceof GatewayError && again.status === 401, 'later calls fail without a session')
  t.same(app.signedOut, ['session_ended'], 'and tell nothing twice')
})

/** A native client whose refresh answers are held back until `release()`. */
async function heldRefreshes(t: Test, id: string) {
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  const app = await signedUp(t, id, {
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      if (String(input).endsWith('/auth/token')) await held
      return response
    },
  })
  return { ...app, release }
}

t.test('a logout while a refresh is in flight ends the session with the rotated token', async (t) => {
  const app = await heldRefreshes(t, '9100007')
  const refreshing = app.client.refresh()
  await sleep(200)
  let done = false
  const logout = app.client.logout().then(() => (done = true))
  await sleep(200)
  t.notOk(done, 'the logout waits for the refresh')
  app.release()
  await Promise.all([refreshing, logout])
  const successor = app.writes.at(-2)!
  t.same(app.writes.at(-1), null, 'then removes the stored token')
  const reused = await fetch(`${baseUrl}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: successor }) })
  t.equal(reused.status, 401, 'the newest refresh token is dead at the gateway')
  t.same(app.signedOut, ['logout'])
})

t.test('a refresh answered after the app signed out does not sign it back in', async (t) => {
  const app = await heldRefreshes(t, '9100011')
  const refreshing = app.client.refresh().catch((error: unknown) => error)
  await sleep(200)
  await app.client.logoutEverywhere()
  app.release()
  const late = await refreshing
  t.match(late, { name: 'GatewayError', status: 401 }, 'the late refresh answers signed out')
  t.same(app.writes.at(-1), null, 'nothing stored again')
  t.equal(app.client.state, 'signed_out')
  t.same(app.events.map((event) => event.state), ['signed_in', 'signed_out'])
})

t.test('native SDK credentials: a Kakao access token, a Google ID token; link, unlink, logout', async (t) => {
  const app = nativeClient()
  const sdk = await kakao.sdkLogin({ id: '9100008', nickname: 'Sdk Kim' })
  const login = await app.client.loginWithNativeCredential('kakao', { accessToken: sdk.accessToken })
  t.match(login, { status: 'authenticated', user: { nickname: 'Sdk Kim' }, isNewUser: true }, "Kakao's SDK access token logs in")

  const google = await nativeAppAuthorization(gateway, { sub: 'client-google-8', name: 'G Eight', email: 'g8@example.com' })
  const identities = await app.client.link('google', { code: google.code, codeVerifier: google.codeVerifier, nonce: google.nonce, redirectUri: google.redirectUri })
  t.same(identities.map((identity) => identity.provider).sort(), ['google', 'kakao'], 'linked with a PKCE code the app got itself')
  const twice = await app.client.link('google', { ...(await nativeAppAuthorization(gateway, { sub: 'client-google-8b', name: 'B' })) }).catch((error: unknown) => error)
  t.match(twice, { name: 'GatewayError', status: 409, error: 'provider_already_linked' }, 'refusals are typed GatewayErrors')
  await app.client.unlink(identities.find((identity) => identity.provider === 'google')!.id)
  t.same((await app.client.identities()).map((identity) => identity.provider), ['kakao'])

  const refreshToken = app.current()
  await app.client.logout()
  t.equal(app.current(), null, 'logout removes the stored token')
  const reused = await fetch(`${baseUrl}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }) })
  t.equal(reused.status, 401, 'the session ended at the gateway too')
  t.same(app.signedOut, ['logout'])

  const { googleSdkIdToken } = await import('../../test/support/gateway.js')
  const { idToken, nonce } = await googleSdkIdToken(gateway, { sub: 'client-google-9', name: 'G Nine' })
  const again = nativeClient()
  t.match(await again.client.loginWithNativeCredential('google', { idToken, nonce }), { status: 'authenticated', user: { nickname: 'G Nine' } }, "Google's SDK ID token logs in")
})

t.test('logout everywhere ends the other devices; deleting the account signs out', async (t) => {
  const phone = await signedUp(t, '9100009')
  // The same member on a tablet: a Kakao login of a known member, no signup.
  const tablet = nativeClient()
  const started = await tablet.client.startLogin('kakao', { redirectUri: REDIRECT_URI })
  const code = (await kakao.authorize(started.authorizationUrl, { id: '9100009' })).searchParams.get('code')!
  t.match(await tablet.client.finishLogin('kakao', { code, state: started.state, redirectUri: REDIRECT_URI }), { status: 'authenticated', isNewUser: false })

  await phone.client.logoutEverywhere()
  t.same(phone.signedOut, ['logout_everywhere'])
  t.equal(phone.current(), null)
  await tablet.client.refresh().catch(() => {})
  t.same(tablet.signedOut, ['session_ended'], "the tablet's next refresh finds its session ended")

  const app = await signedUp(t, '9100010')
  await app.client.deleteAccount()
  t.same(app.signedOut, ['account_deleted'])
  t.equal(app.current(), null)
  const gone = await app.client.me().catch((error: unknown) => error)
  t.ok(gone instanceof GatewayError && gone.status === 401, 'signed out after deletion')
})

t.test('50 parallel API calls across an access-token expiry cause exactly one refresh', async (t) => {
  const { app, loggedInAt } = expiring!
  const first = await app.client.getAccessToken()
  // The access token lives 30 s; the client renews it in its last 5.
  await sleep(Math.max(0, loggedInAt + 25_500 - Date.now()))
  const before = refreshes.length
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => app.client.fetch(i % 2 ? orders : `${baseUrl}/auth/me`)))
  t.same([...new Set(answers.map((answer) => answer.status))], [200], 'every call answered')
  t.same(refreshes.slice(before), [200], 'one refresh for all fifty')
  t.not(await app.client.getAccessToken(), first, 'with a new access token')
})
