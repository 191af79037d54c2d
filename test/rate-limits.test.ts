// A burst of logins from one address is refused with 429 before any provider call; a
// client cannot buy a fresh budget by inventing X-Forwarded-For; behind a trusted proxy,
// each real client address has its own budget.

import t from 'tap'
import { REDIRECT_URI, startTestGateway } from './support/gateway.js'

const login = { provider: 'google', code: 'some-code', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) }

t.test('logins over the limit are refused with 429 before the provider is called', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_LOGIN: '3', RATE_LIMIT_TOKEN: '5' } })
  t.teardown(() => gateway.close())
  let providerCalls = 0
  const realFetch = globalThis.fetch
  globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    if (String(input instanceof Request ? input.url : input).startsWith(gateway.google.issuer)) providerCalls++
    return realFetch(input, init)
  }) as typeof fetch
  t.teardown(() => void (globalThis.fetch = realFetch))

  const attempt = (headers: Record<string, string> = {}) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload: login, headers })
  for (let i = 0; i < 3; i++) t.equal((await attempt()).statusCode, 401, `attempt ${i + 1} reaches the provider (and is refused by it)`)
  const callsBefore = providerCalls
  const limited = await attempt()
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().error, 'rate_limited')
  t.match(limited.json().message, /retry after/)
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After says when')
  const spoofed = await attempt({ 'x-forwarded-for': '203.0.113.7' })
  t.equal(spoofed.statusCode, 429, 'an invented X-Forwarded-For does not reset the budget')
  t.equal(providerCalls, callsBefore, 'no provider call for a limited request')

  const refresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: 'x' } })
  t.equal(refresh.statusCode, 401, 'refresh has its own budget')
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

t.test('with Redis down the limiter cannot count, so it refuses: 503 with Retry-After', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { RATE_LIMIT_LOGIN: '3' } })
  t.teardown(() => gateway.close())
  await gateway.testRedis.stop()
  // The code route needs no Redis of its own before calling the provider: only the limiter stands in the way.
  for (let i = 0; i < 5; i++) {
    const attempt = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: login })
    t.equal(attempt.statusCode, 503, `login ${i + 1}`)
    t.equal(attempt.json().error, 'unavailable')
    t.equal(attempt.headers['retry-after'], '1')
  }
  const refresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: 'x' } })
  t.equal(refresh.statusCode, 503, 'refresh too: never a 401 that would make a client drop its token')
  // test/fail-closed.test.ts covers every login route and counts what the provider saw.
})
