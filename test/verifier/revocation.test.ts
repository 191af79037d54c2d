// The measurement: how long after a logout does a resource server refuse the
// logged-out access token? Two gateway instances share one Redis and one PostgreSQL
// database; the user logs in on A and out on B; a resource server with the verifier
// and Redis revocation checking polls with the token until it is refused.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import * as jose from 'jose'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { createGateway } from '../../src/gateway.js'
import { loginWithGoogle, startTestGateway } from '../support/gateway.js'
import { createTestDatabase } from '../support/postgres.js'
import { call, connectSessionRedis, startResourceServer } from './fixtures/resource-server.js'

const POLL_EVERY_MS = 5

const database = await createTestDatabase()
t.teardown(() => database.drop())
const instanceA = await startTestGateway({ databaseUrl: database.url, listen: true })
t.teardown(() => instanceA.close())
// Instance B: the same public URL, signing keys, Redis and database; another process in production.
const instanceB = await createGateway(
  loadConfig({
    NODE_ENV: 'test',
    PUBLIC_URL: instanceA.config.publicUrl,
    SIGNING_KEYS: instanceA.config.signingKeys!,
    REDIS_URL: instanceA.testRedis.url,
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
  }),
  false,
)
t.teardown(() => instanceB.close())

const verifierOptions = { issuer: instanceA.config.publicUrl, audience: instanceA.config.tokenAudience }
const redis = await connectSessionRedis(instanceA.testRedis.url)
t.teardown(() => redis.disconnect())
const checking = await startResourceServer({ ...verifierOptions, revocation: { redis } })
const notChecking = await startResourceServer({ ...verifierOptions, revocation: false })
t.teardown(() => Promise.all([checking.close(), notChecking.close()]))

t.test('logout on instance B: the resource server refuses the token within one second', async (t) => {
  const login = await loginWithGoogle(instanceA, { sub: 'revoked-rita', name: 'Rita' })
  t.equal(login.statusCode, 200, { body: login.body })
  const { accessToken, refreshToken } = login.json()
  t.equal((await call(checking, '/me', accessToken)).statusCode, 200, 'accepted while the session lives')
  t.equal((await call(notChecking, '/me', accessToken)).statusCode, 200)

  // Warm instance B and the resource server up on another session, so the figure is the
  // steady state and not the first request a fresh process compiles its routes for.
  const warmUp = (await loginWithGoogle(instanceA, { sub: 'warm-up-wes', name: 'Wes' })).json()
  await call(checking, '/me', warmUp.accessToken)
  t.equal((await instanceB.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: warmUp.refreshToken } })).statusCode, 204)

  const sent = performance.now()
  const seen: number[] = []
  const polling = (async () => {
    while (performance.now() - sent < 5000) {
      const response = await call(checking, '/me', accessToken)
      if (response.statusCode !== 200) return { at: performance.now(), response }
      seen.push(response.statusCode)
      await sleep(POLL_EVERY_MS)
    }
    return undefined
  })()
  const logout = await instanceB.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } })
  const answered = performance.now()
  t.equal(logout.statusCode, 204, 'instance B ended the session')
  const refusal = await polling

  t.ok(refusal, 'the token was refused within 5 s')
  if (!refusal) return
  t.equal(refusal.response.statusCode, 401)
  t.equal(refusal.response.json().message, 'the session of this access token has ended')
  t.equal(refusal.response.headers['www-authenticate'], 'Bearer error="invalid_token"')
  const delay = refusal.at - sent
  t.comment(
    `revocation delay: refused ${delay.toFixed(1)} ms after the logout was sent to instance B ` +
      `(the logout took ${(answered - sent).toFixed(1)} ms; ${seen.length} accepted poll(s) before, one every ${POLL_EVERY_MS} ms)`,
  )
  t.ok(delay < 1000, `refused within one second (${delay.toFixed(1)} ms)`)
  t.ok(refusal.at - answered <= POLL_EVERY_MS + 50, 'at the first poll after the logout answered')

  t.equal((await call(checking, '/me', accessToken)).statusCode, 401, 'and stays refused')
  const me = await instanceA.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(me.statusCode, 401, 'instance A\'s own bearer endpoints refuse it too')

  // Without revocation checking the token lives on until it expires: the residual window.
  const unchecked = await call(notChecking, '/me', accessToken)
  t.equal(unchecked.statusCode, 200, 'with revocation off the logged-out token is still accepted')
  const { exp } = jose.decodeJwt(accessToken)
  t.comment(`with revocation off it stays usable for ${exp! - Math.floor(Date.now() / 1000)} s more (ACCESS_TOKEN_TTL ${instanceA.config.accessTokenTtl} s)`)
})

t.test('Redis stopped: 503 unavailable from the resource server, never 200 or 401', async (t) => {
  const { accessToken } = (await loginWithGoogle(instanceA, { sub: 'outage-otto', name: 'Otto' })).json()
  t.equal((await call(checking, '/me', accessToken)).statusCode, 200)
  // A client left with ioredis defaults queues commands while disconnected: the plugin's
  // own timeout still bounds the wait.
  const queueing = await connectSessionRedis(instanceA.testRedis.url, { enableOfflineQueue: true, maxRetriesPerRequest: 20, commandTimeout: undefined })
  t.teardown(() => queueing.disconnect())
  const patient = await startResourceServer({ ...verifierOptions, revocation: { redis: queueing, timeoutMs: 300 } })
  t.teardown(() => patient.close())
  t.equal((await call(patient, '/me', accessToken)).statusCode, 200)

  await instanceA.testRedis.stop()
  for (const [name, server] of [['a fail-fast client', checking], ['a queueing client', patient]] as const) {
    const started = performance.now()
    const response = await call(server, '/me', accessToken)
    const elapsed = performance.now() - started
    t.equal(response.statusCode, 503, `${name}: 503`)
    t.same(response.json(), { error: 'unavailable', message: 'the session store is unavailable' })
    t.equal(response.headers['retry-after'], '1')
    t.ok(elapsed < 1500, `${name}: answered in ${elapsed.toFixed(0)} ms`)
  }
  t.equal((await call(checking, '/me', 'garbage')).statusCode, 401, 'a bad token is still a 401: it never reaches Redis')
  t.equal((await call(notChecking, '/me', accessToken)).statusCode, 200, 'without revocation checking Redis is not needed')
})
