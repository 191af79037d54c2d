// Storage outages fail closed: 503 (never a 401 that makes clients drop their tokens,
// never a token without a stored session), the public keys stay served, and the gateway
// recovers by itself when the server comes back.

import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { IncomingMessage, Server } from 'node:http'
import * as jose from 'jose'
import t, { type Test } from 'tap'
import { sessionKeys } from '../verifier/session-keys.js'
import {
  googleSdkIdToken,
  loginWithGoogle,
  nativeAppAuthorization,
  redisReconnected,
  startTestGateway,
  type TestGateway,
} from './support/gateway.js'
import { startPostgresCluster } from './support/postgres.js'
import { startTcpProxy, throughProxy } from './support/tcp-proxy.js'

const refresh = (gateway: TestGateway, refreshToken: string) =>
  gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const jwks = (gateway: TestGateway) => gateway.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
const ready = (gateway: TestGateway) => gateway.app.inject({ method: 'GET', url: '/health/ready' })

t.test('Redis', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite' })
  t.teardown(() => gateway.close())

  t.test('frozen mid-refresh: 503 fast, keys still served, and the same token works when it is back', async (t) => {
    const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'frozen', name: 'Frida' })).json()
    const leaving = (await loginWithGoogle(gateway, { sub: 'frozen-leaving', name: 'Lea' })).json()
    gateway.testRedis.pause()
    const started = Date.now()
    const frozen = await refresh(gateway, refreshToken)
    const elapsed = Date.now() - started
    t.equal(frozen.statusCode, 503)
    t.equal(frozen.json().error, 'unavailable')
    t.ok(frozen.headers['retry-after'], 'tells the client when to retry')
    t.ok(elapsed < 2500, `answered within the 1.5 s Redis deadline, plus scheduling (${elapsed} ms)`)
    // A logout makes two calls (its address count, which may fail, then the deletion). Once a
    // call went unanswered, the next ones do not each wait a full deadline.
    const logoutStarted = Date.now()
    const logout = await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: leaving.refreshToken } })
    const logoutElapsed = Date.now() - logoutStarted
    t.equal(logout.statusCode, 503, 'a logout meets the frozen Redis: 503')
    t.ok(logoutElapsed < 1400, `and answers sooner than one full deadline (${logoutElapsed} ms)`)
    t.equal((await jwks(gateway)).statusCode, 200, 'JWKS is served while Redis is frozen')
    gateway.testRedis.resume()

    // The frozen rotation may have run after SIGCONT; the retry falls in the grace window.
    const retried = await refresh(gateway, refreshToken)
    t.equal(retried.statusCode, 200, 'the client retries with the token it still holds')
    t.equal((await refresh(gateway, retried.json().refreshToken)).statusCode, 200, 'and the session goes on')
  })

  t.test('stopped: every Redis endpoint answers 503, and the next request after it returns succeeds', async (t) => {
    await gateway.testRedis.stop()
    const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: 'https://app.example/callback' } })
    t.equal(start.statusCode, 503)
    t.equal(start.json().error, 'unavailable')
    const token = await refresh(gateway, 'A'.repeat(112))
    t.equal(token.statusCode, 503, 'a refresh is 503, not a 401 that would make clients drop their tokens')
    t.equal((await ready(gateway)).statusCode, 503)
    t.equal((await ready(gateway)).json().checks.redis, 'unavailable')
    t.equal((await gateway.app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
    t.equal((await jwks(gateway)).statusCode, 200)

    await gateway.testRedis.start()
    await redisReconnected(gateway)
    const login = await loginWithGoogle(gateway, { sub: 'after-restart', name: 'Rory' })
    t.equal(login.statusCode, 200, 'logins work again without restarting the gateway')
    t.equal((await ready(gateway)).statusCode, 200)
  })

  t.test('lost after the provider exchange: 503, no access token, and the audit trail says the session start failed', async (t) => {
    const first = await loginWithGoogle(gateway, { sub: 'late-loss', name: 'Lee' })
    const userId = first.json().user.id as string
    const credential = await nativeAppAuthorization(gateway, { sub: 'late-loss', name: 'Lee' })
    // Redis freezes the moment Google's token endpoint gets the code: after the rate limiter
    // (which would refuse a login with Redis already gone), before the session is stored.
    const googlePort = Number(new URL(gateway.google.issuer).port)
    let tokenCalls = 0
    const freezeAtTokenCall = (message: unknown) => {
      const { request, server } = message as { request: IncomingMessage; server: Server }
      const address = server.address()
      if (typeof address !== 'object' || address?.port !== googlePort || request.method !== 'POST' || !request.url?.startsWith('/token')) return
      if (tokenCalls++ === 0) gateway.testRedis.pause()
    }
    subscribe('http.server.request.start', freezeAtTokenCall)
    try {
      const login = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: credential })
      t.equal(tokenCalls, 1, 'the code reached Google')
      t.equal(login.statusCode, 503)
      t.notOk(login.json().accessToken, 'no token without a stored session')
    } finally {
      unsubscribe('http.server.request.start', freezeAtTokenCall)
      gateway.testRedis.resume()
    }
    await redisReconnected(gateway)
    // The row is written while Redis stores the session: the one Redis never confirmed says so.
    const started = await gateway.database.prisma.auditEvent.findMany({ where: { userId, action: 'session.started' }, orderBy: { id: 'asc' } })
    t.same(started.map((row) => [row.outcome, row.detail]), [['success', null], ['failed', 'Redis did not confirm the session; none of its tokens was sent']], 'the first login started a session, the second did not')
  })
})

t.test('PostgreSQL stopped: login and signup 503, refresh and JWKS keep working, then recovery', async (t) => {
  const cluster = await startPostgresCluster()
  t.teardown(() => cluster.stop())
  const gateway = await startTestGateway({ databaseUrl: cluster.url })
  t.teardown(() => gateway.close())

  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'db-outage', name: 'Dana' })).json()
  const { signupToken } = (await loginWithGoogle(gateway, { sub: 'db-outage-new' })).json()
  const credential = await nativeAppAuthorization(gateway, { sub: 'db-outage', name: 'Dana' })

  await cluster.stop()
  const started = Date.now()
  const login = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: credential })
  t.equal(login.statusCode, 503, 'login')
  t.equal(login.json().error, 'unavailable')
  t.ok(Date.now() - started < 10_000, 'within the database timeout')
  const signup = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Nia' } })
  t.equal(signup.statusCode, 503, 'signup')
  t.equal((await jwks(gateway)).statusCode, 200, 'JWKS is still served')
  t.equal((await refresh(gateway, refreshToken)).statusCode, 200, 'refresh needs only Redis')
  t.equal((await ready(gateway)).json().checks.database, 'unavailable')

  await cluster.start()
  const resumed = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Nia' } })
  t.equal(resumed.statusCode, 201, 'the same signup ticket works once the database is back')
  t.equal((await loginWithGoogle(gateway, { sub: 'db-outage', name: 'Dana' })).json().status, 'authenticated')
  t.equal(await gateway.database.prisma.user.count(), 2, 'no half-written user: exactly the two complete accounts')
})

t.test('PostgreSQL stopped after a returning login: its refresh keeps the scopes the login read with the user', async (t) => {
  const cluster = await startPostgresCluster()
  t.teardown(() => cluster.stop())
  const gateway = await startTestGateway({ databaseUrl: cluster.url })
  t.teardown(() => gateway.close())
  const { prisma } = gateway.database
  await prisma.role.create({ data: { name: 'reader', scopes: { create: [{ resource: gateway.config.tokenAudience, scope: 'read:profile' }] } } })
  const first = (await loginWithGoogle(gateway, { sub: 'db-outage-returning', name: 'Rea' })).json()
  await prisma.userRole.create({ data: { user: { connect: { publicId: first.user.id } }, role: { connect: { name: 'reader' } } } })
  // The scope cache ran out (SCOPE_CACHE_TTL) since the first login: only the returning login can fill it.
  await gateway.redis.del(sessionKeys.scopes(first.user.id))

  const returning = (await loginWithGoogle(gateway, { sub: 'db-outage-returning', name: 'Rea' })).json()
  t.equal(jose.decodeJwt(returning.accessToken).scope, 'read:profile', 'the returning login reads the role scope with the user')
  await cluster.stop()
  const refreshed = await refresh(gateway, returning.refreshToken)
  t.equal(refreshed.statusCode, 200, 'the refresh needs no database: the login cached the scopes with its session')
  t.equal(jose.decodeJwt(refreshed.json().accessToken).scope, 'read:profile', 'and the refreshed token keeps them')
})

/** A gateway on a private PostgreSQL cluster reached through a TCP proxy that can freeze or cut its connections. */
async function gatewayBehindPostgresProxy(t: Test) {
  const cluster = await startPostgresCluster()
  t.teardown(() => cluster.stop())
  const proxy = await startTcpProxy(cluster.port)
  t.teardown(() => proxy.close())
  const gateway = await startTestGateway({ databaseUrl: throughProxy(cluster.url, proxy) })
  t.teardown(() => gateway.close())
  return { proxy, gateway }
}

t.test('PostgreSQL lost right after the signup wrote the account: 503, and the same ticket then signs in that account', async (t) => {
  const { proxy, gateway } = await gatewayBehindPostgresProxy(t)

  const { signupToken } = (await loginWithGoogle(gateway, { sub: 'cut-after-create' })).json()
  // The account is written; the connection drops on the next query (the new user's scopes).
  proxy.cutWhenClientSends('role_scopes')
  const cut = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Cora' } })
  t.equal(cut.statusCode, 503, 'the signup answers 503')
  t.notOk(cut.json().accessToken, 'without tokens')
  t.equal(await gateway.database.prisma.user.count(), 1, 'the account was written before the connection dropped')

  const retried = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Cora' } })
  t.equal(retried.statusCode, 201, 'the retry with the same ticket succeeds')
  t.equal(retried.json().user.nickname, 'Cora')
  t.ok(retried.json().accessToken, 'and gets tokens')
  t.equal(await gateway.database.prisma.user.count(), 1, 'for the account already written, not a second one')
  const login = (await loginWithGoogle(gateway, { sub: 'cut-after-create' })).json()
  t.equal(login.user?.id, retried.json().user.id, 'and a later login reaches that same account')
  const again = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Cora' } })
  t.equal(again.statusCode, 401, 'the ticket is spent by the signup that succeeded')
})

t.test('PostgreSQL frozen: login and signup answer 503 within about 2 s, then work with the same credentials', async (t) => {
  const { proxy, gateway } = await gatewayBehindPostgresProxy(t)

  await loginWithGoogle(gateway, { sub: 'frozen-db', name: 'Freya' })
  const { idToken, nonce } = await googleSdkIdToken(gateway, { sub: 'frozen-db', name: 'Freya' })
  const credential = { provider: 'google', idToken, nonce }
  const { signupToken } = (await loginWithGoogle(gateway, { sub: 'frozen-db-new' })).json()

  proxy.freeze()
  for (const [step, payload] of [
    ['login', credential],
    ['signup', { signupToken, nickname: 'Nova' }],
  ] as const) {
    const started = Date.now()
    const answer = await gateway.app.inject({ method: 'POST', url: step === 'login' ? '/auth/login' : '/auth/signup', payload })
    const elapsed = Date.now() - started
    t.equal(answer.statusCode, 503, `${step} answers 503`)
    t.ok(elapsed < 2500, `${step}: within about 2 s (${elapsed} ms)`)
  }
  proxy.thaw()

  const login = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: credential })
  t.equal(login.statusCode, 200, 'the same ID token logs in once the database answers')
  const signup = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Nova' } })
  t.equal(signup.statusCode, 201, 'the same signup ticket completes')
  t.equal(await gateway.database.prisma.user.count(), 2, 'one account each')
})
