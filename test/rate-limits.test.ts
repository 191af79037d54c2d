// A burst of logins from one address is refused with 429 before any provider call; a
// client cannot buy a fresh budget by inventing X-Forwarded-For; behind a trusted proxy,
// each real client address has its own budget. Introspection, which resource servers call
// for the requests they serve, has a budget per authenticated client instead.

import t from 'tap'
import { ClientDirectory, type NewClient } from '../src/clients/client-directory.js'
import { hashSecret } from '../src/common/secrets.js'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { sessionKeys } from '../verifier/session-keys.js'
import { loginWithGoogle, REDIRECT_URI, startTestGateway } from './support/gateway.js'
import { countGoogleRequests } from './support/provider-requests.js'

const login = { provider: 'google', code: 'some-code', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) }

t.test('logins over the limit are refused with 429 before the provider is called', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_LOGIN: '3', RATE_LIMIT_TOKEN: '5' } })
  t.teardown(() => gateway.close())
  const google = countGoogleRequests(t, gateway.google.issuer)

  const attempt = (headers: Record<string, string> = {}) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload: login, headers })
  for (let i = 0; i < 3; i++) t.equal((await attempt()).statusCode, 401, `attempt ${i + 1} reaches the provider (and is refused by it)`)
  const callsBefore = google.all
  t.equal(google.token, 3, 'each of them was a token call at Google')
  const limited = await attempt()
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().error, 'rate_limited')
  t.match(limited.json().message, /retry after/)
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After says when')
  const spoofed = await attempt({ 'x-forwarded-for': '203.0.113.7' })
  t.equal(spoofed.statusCode, 429, 'an invented X-Forwarded-For does not reset the budget')
  t.equal(google.all, callsBefore, 'no provider call for a limited request')

  const refresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: 'x' } })
  t.equal(refresh.statusCode, 401, 'refresh has its own budget')
})

t.test('refreshes are limited per session, not per address (carrier NAT)', async (t) => {
  // RATE_LIMIT_TOKEN is small too: a per-address count would refuse the phones below.
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_REFRESH: '3', RATE_LIMIT_TOKEN: '5' } })
  t.teardown(() => gateway.close())
  const refresh = (refreshToken: string) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

  // Ten phones behind one address, each within its own session's allowance.
  const phones = await Promise.all(Array.from({ length: 10 }, (_, i) => loginWithGoogle(gateway, { sub: `nat-${i}`, name: 'Nat' })))
  let answers = 0
  for (const phone of phones) {
    let token = phone.json().refreshToken as string
    for (let i = 0; i < 3; i++) {
      const answer = await refresh(token)
      t.equal(answer.statusCode, 200, 'every phone refreshes')
      token = answer.json().refreshToken
      answers++
    }
  }
  t.equal(answers, 30, '30 refreshes from one address, 3 per session, all served')

  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'busy', name: 'Bea' })).json()
  const parts = parseRefreshToken(refreshToken)!
  // Someone holding only the session's ids (a forged secret) cannot use up its allowance.
  const forged = refreshToken.slice(0, 60) + (refreshToken[60] === 'A' ? 'B' : 'A') + refreshToken.slice(61)
  for (let i = 0; i < 5; i++) t.equal((await refresh(forged)).statusCode, 401, 'a forged token is refused')
  let token = refreshToken
  for (let i = 0; i < 3; i++) {
    const answer = await refresh(token)
    t.equal(answer.statusCode, 200, `refresh ${i + 1} of 3`)
    token = answer.json().refreshToken
  }
  const limited = await refresh(token)
  t.equal(limited.statusCode, 429, 'the fourth in a minute is refused')
  t.equal(limited.json().error, 'rate_limited')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After says when (${retryAfter} s)`)
  t.equal(await gateway.redis.hget(sessionKeys.session(parts.userId, parts.sessionId), 'gen'), '3', 'without rotating: the presented token stays the live one')
  const other = (await loginWithGoogle(gateway, { sub: 'busy', name: 'Bea' })).json()
  t.equal((await refresh(other.refreshToken)).statusCode, 200, "the same user's other session is not limited")
})

t.test("a lost answer's retries (the previous token again) count against the session's allowance too", async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_REFRESH: '3' } })
  t.teardown(() => gateway.close())
  const refresh = (refreshToken: string) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'retrier', name: 'Rae' })).json()
  const first = await refresh(refreshToken)
  t.equal(first.statusCode, 200)
  for (let retry = 1; retry <= 2; retry++) {
    const again = await refresh(refreshToken)
    t.equal(again.statusCode, 200, `retry ${retry}: the same successor`)
    t.equal(again.json().refreshToken, first.json().refreshToken)
  }
  t.equal((await refresh(refreshToken)).statusCode, 429, 'the fourth presentation in a minute is refused')
  t.equal((await refresh(first.json().refreshToken)).statusCode, 429, 'and so is the live token: the allowance is the session\'s')
})

t.test('behind a trusted proxy each client address has its own budget', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_LOGIN: '2', TRUST_PROXY: '127.0.0.1' } })
  t.teardown(() => gateway.close())
  const from = (client: string) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload: login, headers: { 'x-forwarded-for': client } })
  t.equal((await from('198.51.100.1')).statusCode, 401)
  t.equal((await from('198.51.100.1')).statusCode, 401)
  t.equal((await from('198.51.100.1')).statusCode, 429, 'the first client is out of budget')
  t.equal((await from('198.51.100.2')).statusCode, 401, 'another client behind the same proxy is not')
})

t.test('a login refused by the budget keeps its state: the same state and code log in once the budget allows', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_LOGIN: '2', TRUST_PROXY: '127.0.0.1' } })
  t.teardown(() => gateway.close())
  const from = (client: string, payload: object) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload, headers: { 'x-forwarded-for': client } })
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const { authorizationUrl, state } = start.json()
  const code = await gateway.codeFor(authorizationUrl, { sub: 'refused-once', name: 'Rhea' })
  const withState = { provider: 'google', code, redirectUri: REDIRECT_URI, state }
  const stateKey = `gw:login:${hashSecret(state)}`
  const leftAtFirst = await gateway.redis.pttl(stateKey)

  // The login's state is claimed while the budget is counted: a refusal must give it back.
  const unknownResource = await from('198.51.100.1', { ...withState, resource: 'https://unknown.example/api' })
  t.equal(unknownResource.json().error, 'invalid_target', 'an unknown resource is refused…')
  t.equal((await from('198.51.100.1', login)).statusCode, 401, 'the address spends the rest of its budget')
  const refused = await from('198.51.100.1', withState)
  t.equal(refused.statusCode, 429, '…and so is a login over the budget')
  const left = await gateway.redis.pttl(stateKey)
  t.ok(left > 0 && left <= leftAtFirst, `the state is back, expiring no later than it would have (${left} of ${leftAtFirst} ms left)`)

  const retried = await from('198.51.100.2', withState)
  t.equal(retried.statusCode, 200, 'the same state and code log in from an address with budget')
  t.equal(retried.json().status, 'authenticated')
  const replayed = await from('198.51.100.3', withState)
  t.equal(replayed.json().error, 'invalid_state', 'and the state still works only once')
})

t.test('with Redis down the limiter cannot count, so it refuses: 503 with Retry-After', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_LOGIN: '3' } })
  t.teardown(() => gateway.close())
  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'redis-down', name: 'Dora' })).json()
  await gateway.testRedis.stop()
  // The code route needs no Redis of its own before calling the provider: only the limiter stands in the way.
  for (let i = 0; i < 5; i++) {
    const attempt = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: login })
    t.equal(attempt.statusCode, 503, `login ${i + 1}`)
    t.equal(attempt.json().error, 'unavailable')
    t.equal(attempt.headers['retry-after'], '1')
  }
  const refresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
  t.equal(refresh.statusCode, 503, 'refresh too: never a 401 that would make a client drop its token')
  // test/fail-closed.test.ts covers every login route and counts what the provider saw.
})

t.test('introspection is counted per authenticated client, and failed authentications per address', async (t) => {
  const gateway = await startTestGateway({ env: { RATE_LIMIT_TOKEN: '3', RATE_LIMIT_INTROSPECTION: '5', TRUST_PROXY: '127.0.0.1' } })
  t.teardown(() => gateway.close())
  const clients = new ClientDirectory(gateway.database.prisma)
  const [orders, payments] = await Promise.all([clients.create('orders'), clients.create('payments')])
  const introspect = (form: Record<string, string>, from = '198.51.100.1', authorization?: string) =>
    gateway.app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from, ...(authorization ? { authorization } : {}) },
      payload: new URLSearchParams({ token: 'some-token', ...form }).toString(),
    })
  const as = (client: NewClient) => ({ client_id: client.clientId, client_secret: client.clientSecret })

  // Two resource servers behind one address: each has its own budget, far beyond the address's.
  for (let i = 0; i < 5; i++) {
    t.equal((await introspect(as(orders))).statusCode, 200, `orders, call ${i + 1} of 5`)
    t.equal((await introspect({}, '198.51.100.1', `Basic ${Buffer.from(`${payments.clientId}:${payments.clientSecret}`).toString('base64')}`)).statusCode, 200, `payments (HTTP Basic), call ${i + 1} of 5`)
  }
  const limited = await introspect(as(orders), '203.0.113.9')
  t.equal(limited.statusCode, 429, 'the sixth call of a client in a minute is refused, from whatever address')
  t.match(limited.json(), { error: 'rate_limited', message: /too many requests from this client/ })
  t.ok(Number(limited.headers['retry-after']) > 0)

  // Guessing is limited per address, and does not use up the clients' budgets.
  const wrong = { client_id: payments.clientId, client_secret: 'not-the-secret' }
  for (let i = 0; i < 3; i++) t.equal((await introspect(wrong, '192.0.2.7')).statusCode, 401, `failed attempt ${i + 1} of 3`)
  const guessing = await introspect(wrong, '192.0.2.7')
  t.equal(guessing.statusCode, 429, 'the fourth failed attempt from that address in a minute is refused')
  t.match(guessing.json().message, /too many requests from this address/)
  t.equal((await introspect({}, '192.0.2.7')).statusCode, 429, 'so is a request without credentials')
  t.equal((await introspect(wrong, '192.0.2.8')).statusCode, 401, 'another address has its own budget')
  const fresh = await clients.create('inventory')
  t.equal((await introspect(as(fresh), '192.0.2.7')).statusCode, 200, 'a client that authenticates is counted as itself, even from that address')
})
