// Fail closed everywhere, and say so: while a store cannot do its work, the routes that
// need it answer 503 with Retry-After before anything irreversible happens (no provider
// call, no spent credential), /health/ready says so, and everything works again by itself
// once the store is back. Every fault here is real: a stopped redis-server, a Redis that
// is out of memory, a stopped PostgreSQL.

import { Redis } from 'ioredis'
import t from 'tap'
import {
  googleSdkIdToken,
  loginWithGoogle,
  nativeAppAuthorization,
  REDIRECT_URI,
  redisReconnected,
  startTestGateway,
  type TestGateway,
} from './support/gateway.js'
import { startPostgresCluster } from './support/postgres.js'
import { countGoogleRequests } from './support/provider-requests.js'

const ready = (gateway: TestGateway) => gateway.app.inject({ method: 'GET', url: '/health/ready' })

t.test('Redis stopped: every login route answers 503 before any provider call', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite' })
  t.teardown(() => gateway.close())
  // A genuine code, obtained before the outage: sent during it, it must not be burned at Google.
  const genuine = await nativeAppAuthorization(gateway, { sub: 'outage-code', name: 'Otto' })
  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'outage-session', name: 'Sam' })).json()
  const google = countGoogleRequests(t, gateway.google.issuer)

  await gateway.testRedis.stop()
  const codes = []
  for (let i = 0; i < 60; i++) {
    const response = await gateway.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { provider: 'google', code: `code-${i}`, redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) },
    })
    codes.push(`${response.statusCode} ${response.json().error} retry-after=${response.headers['retry-after']}`)
  }
  t.same(new Set(codes), new Set(['503 unavailable retry-after=1']), '60 code logins: all 503 unavailable, with Retry-After')
  const duringOutage = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: genuine })
  t.equal(duringOutage.statusCode, 503, 'a genuine code: 503 too')

  const otherLoginRoutes = {
    'POST /auth/login/start': { method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } },
    'POST /auth/login (ID token)': { method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken: 'a.b.c' } },
    'POST /auth/signup': { method: 'POST', url: '/auth/signup', payload: { signupToken: 'S'.repeat(43), nickname: 'Nia' } },
    'GET /auth/authorize/google': { method: 'GET', url: `/auth/authorize/google?returnTo=${encodeURIComponent('https://app.example/')}` },
    'GET /auth/callback/google': { method: 'GET', url: '/auth/callback/google?state=some-state&code=some-code' },
  } as const
  for (const [route, request] of Object.entries(otherLoginRoutes)) {
    const response = await gateway.app.inject(request)
    t.equal(response.statusCode, 503, route)
    t.equal(response.json().error, 'unavailable', route)
    t.equal(response.headers['retry-after'], '1', `${route}: Retry-After`)
  }
  t.equal(google.token, 0, 'Google saw no token call')
  t.equal(google.all, 0, 'Google saw no request at all')

  // Refresh and logout fail closed too, and neither answer tells a client to drop its token.
  const refresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
  t.equal(refresh.statusCode, 503, 'refresh: 503, so the client keeps its refresh token and retries')
  t.equal(refresh.headers['retry-after'], '1')
  const logout = await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } })
  t.equal(logout.statusCode, 503, 'logout: 503, not a 204 for a session that still exists')
  t.equal(logout.headers['retry-after'], '1')

  await gateway.testRedis.start()
  await redisReconnected(gateway)
  const after = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: genuine })
  t.equal(after.statusCode, 200, 'the code sent during the outage still works: it never reached Google')
  t.equal(google.token, 1, 'and that was the first token call Google saw (the counter counts)')
  // (This test's redis-server keeps nothing across a restart, so the session is gone by now.)
  const retriedLogout = await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } })
  t.equal(retriedLogout.statusCode, 204, 'the retried logout succeeds (logout stays idempotent)')
})

t.test('Redis out of memory under noeviction: /health/ready is 503 while PING still answers, and logout still ends sessions', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite' })
  t.teardown(() => gateway.close())
  const mobile = (await loginWithGoogle(gateway, { sub: 'full-redis', name: 'Fay' })).json()
  const other = (await loginWithGoogle(gateway, { sub: 'full-redis', name: 'Fay' })).json()
  const admin = new Redis(gateway.testRedis.url, { maxRetriesPerRequest: 0 })
  t.teardown(() => admin.disconnect())
  t.equal((await ready(gateway)).statusCode, 200, 'ready before')

  // Data that has outgrown maxmemory, by a margin that the connections' own buffers coming
  // and going cannot close: under noeviction every write is refused.
  for (let i = 0; i < 64; i++) await admin.set(`test:filler:${i}`, 'x'.repeat(64 * 1024))
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1])
  await admin.config('SET', 'maxmemory', String(used - 1024 * 1024))
  await t.rejects(admin.set('test:one-more', '1'), /OOM/, 'Redis is full: it refuses even a tiny write')
  t.equal(await admin.ping(), 'PONG', 'but still answers PING')

  const full = await ready(gateway)
  t.equal(full.statusCode, 503, 'not ready while Redis cannot take a write')
  t.same(full.json().checks, { redis: 'unavailable', database: 'ok' }, 'the Redis check says why')
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  t.equal(start.statusCode, 503, 'and a login is indeed refused meanwhile')
  const refused = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: mobile.refreshToken } })
  t.equal(refused.statusCode, 503, 'as is a refresh (it must write)')
  const logout = await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: mobile.refreshToken } })
  t.equal(logout.statusCode, 204, 'but a logout only deletes: it ends the session')
  const logoutAll = await gateway.app.inject({ method: 'POST', url: '/auth/logout-all', headers: { authorization: `Bearer ${other.accessToken}` } })
  t.equal(logoutAll.statusCode, 204, 'and so does logout everywhere')

  await admin.config('SET', 'maxmemory', '0')
  const back = await ready(gateway)
  t.equal(back.statusCode, 200, 'ready again once writes work')
  t.same(back.json().checks, { redis: 'ok', database: 'ok' }, 'both checks pass')
  for (const [session, name] of [[mobile, 'the logged-out session'], [other, 'the session ended by logout everywhere']] as const) {
    const refresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: session.refreshToken } })
    t.equal(refresh.statusCode, 401, `${name} stays ended`)
  }
})

t.test('native ID tokens are spent only by a login that succeeded', async (t) => {
  const cluster = await startPostgresCluster()
  t.teardown(() => cluster.stop())
  const gateway = await startTestGateway({ databaseUrl: cluster.url })
  t.teardown(() => gateway.close())
  const login = ({ idToken, nonce }: { idToken: string; nonce: string }) =>
    gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken, nonce } })

  t.test('PostgreSQL stopped during the login: 503, then the same ID token logs in once', async (t) => {
    const sdk = await googleSdkIdToken(gateway, { sub: 'sdk-outage', name: 'Olga' })
    await cluster.stop()
    const failed = await login(sdk)
    t.equal(failed.statusCode, 503, 'the login fails closed')
    t.equal(failed.json().error, 'unavailable')
    await cluster.start()

    const retried = await login(sdk)
    t.equal(retried.statusCode, 200, 'after recovery the same ID token logs in')
    t.equal(retried.json().status, 'authenticated')
    const replay = await login(sdk)
    t.equal(replay.statusCode, 401, 'and is then spent')
    t.equal(replay.json().error, 'invalid_grant')
  })

  t.test('two parallel logins with the same ID token: exactly one succeeds', async (t) => {
    const sdk = await googleSdkIdToken(gateway, { sub: 'sdk-race', name: 'Rex' })
    const answers = await Promise.all([login(sdk), login(sdk)])
    const statuses = answers.map((answer) => answer.statusCode).sort()
    t.equal(statuses.filter((status) => status === 200).length, 1, `exactly one 200 (${statuses.join(', ')})`)
    // The other is either refused as spent, or told to retry while the winner is in flight.
    t.ok([401, 503].includes(statuses.find((status) => status !== 200)!), 'the other is refused')
    t.equal((await login(sdk)).statusCode, 401, 'a later attempt finds the token spent')
    t.equal(await gateway.database.prisma.identity.count({ where: { subject: 'sdk-race' } }), 1, 'one identity, one user')
  })
})
