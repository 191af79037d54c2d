// Two gateway instances over one shared Redis (a Cluster or a Sentinel group) and one
// database, and the stories every topology must tell the same way: the login story across
// the instances, and refresh load through a master's crash. Used by test/redis-cluster.test.ts,
// test/redis-sentinel.test.ts, and for Redis with passwords and TLS.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import { parseRefreshToken } from '../../src/sessions/refresh-token.js'
import { sessionKeys } from '../../verifier/session-keys.js'
import type { SessionRedis } from '../../verifier/revocation.js'
import { call, startResourceServer } from '../verifier/fixtures/resource-server.js'
import { googleSdkIdToken, loginWithGoogle, REDIRECT_URI, startTestGateway, type GatewayUnderTest } from './gateway.js'
import { createTestDatabase } from './postgres.js'
import type { TestRedis } from './redis.js'

/** Requests per minute, address and route for the token group: small, to be counted across both instances. */
const TOKEN_RATE_LIMIT = 4

export interface GatewayPair {
  a: GatewayUnderTest
  b: GatewayUnderTest
  close(): Promise<void>
}

/**
 * Instance A, and instance B as another process in production would be: the same public
 * URL, signing keys, Redis, database and Google app.
 */
export async function startGatewayPair(redis: Record<string, string>, env: Record<string, string> = {}): Promise<GatewayPair> {
  const database = await createTestDatabase()
  const shared = { ...env, RATE_LIMIT_TOKEN: String(TOKEN_RATE_LIMIT) }
  const a = await startTestGateway({ databaseUrl: database.url, redis, env: shared })
  const b = await startTestGateway({
    databaseUrl: database.url,
    redis,
    env: { ...shared, SIGNING_KEYS: a.config.signingKeys!, GOOGLE_ISSUER: a.google.issuer },
  })
  return {
    a,
    b,
    async close() {
      await Promise.all([a.close(), b.close()])
      await database.drop()
    },
  }
}

/** How a start-up's connection ended: `connected` (and it is closed again), or its error's message. */
export function startupOutcome(connecting: Promise<{ disconnect(): void }>): Promise<string> {
  return connecting.then(
    (redis) => {
      redis.disconnect()
      return 'connected'
    },
    (error: Error) => error.message,
  )
}

/**
 * Two instances on `redis` (the gateway's settings) tell the login story, with
 * `sessionRedis` as the resource server's own client (connected here, fail-fast as the
 * verifier's README has it).
 */
export async function loginStoryOn(t: Test, redis: Record<string, string>, sessionRedis: Redis | Cluster): Promise<void> {
  const pair = await startGatewayPair(redis)
  t.teardown(() => pair.close())
  sessionRedis.on('error', () => {})
  await sessionRedis.connect()
  t.teardown(() => sessionRedis.disconnect())
  await loginStoryAcrossInstances(t, pair, sessionRedis)
}

const refresh = (gateway: GatewayUnderTest, refreshToken: string) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

/**
 * The login story with every step that keeps state in Redis done on one instance and
 * relied on by the other. `sessionRedis` is a resource server's own client of the same
 * Redis, for the verifier's revocation check.
 */
export async function loginStoryAcrossInstances(t: Test, { a, b }: GatewayPair, sessionRedis: SessionRedis): Promise<void> {
  await t.test('a login started on A finishes on B, and its state works once', async (t) => {
    const start = await a.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
    t.equal(start.statusCode, 200, { body: start.body })
    const { authorizationUrl, state } = start.json()
    const code = await a.codeFor(authorizationUrl, { sub: 'traveller', name: 'Tara' })
    const login = await b.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state } })
    t.equal(login.statusCode, 200, { body: login.body })
    t.equal(login.json().status, 'authenticated')
    const replay = await a.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state } })
    t.equal(replay.statusCode, 400, 'the state was consumed on B')
    t.equal(replay.json().error, 'invalid_state')
  })

  await t.test('login on A, refresh on B, logout on A: B refuses the refresh, the verifier the access token', async (t) => {
    const login = await loginWithGoogle(a, { sub: 'roamer', name: 'Rob' })
    t.equal(login.statusCode, 200, { body: login.body })
    const onB = await refresh(b, login.json().refreshToken)
    t.equal(onB.statusCode, 200, { body: onB.body })
    const onA = await refresh(a, onB.json().refreshToken)
    t.equal(onA.statusCode, 200, 'and back on A')
    const { accessToken, refreshToken } = onA.json()

    const jwks = await b.app.listen({ host: '127.0.0.1', port: 0 })
    const orders = await startResourceServer({
      issuer: a.config.publicUrl,
      audience: a.config.tokenAudience,
      jwksUri: `${jwks}/.well-known/jwks.json`,
      revocation: { redis: sessionRedis },
    })
    t.teardown(() => orders.close())
    t.equal((await call(orders, '/me', accessToken)).statusCode, 200, 'the verifier accepts the token of a live session')

    t.equal((await a.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } })).statusCode, 204)
    const after = await refresh(b, refreshToken)
    t.equal(after.statusCode, 401, 'B refuses the refresh token A logged out')
    t.equal(after.json().error, 'invalid_grant')
    const refused = await call(orders, '/me', accessToken)
    t.equal(refused.statusCode, 401, 'the verifier refuses the access token at once')
    t.equal(refused.json().message, 'the session of this access token has ended')
  })

  await t.test('reuse detected on B ends the session A rotated', async (t) => {
    const login = await loginWithGoogle(a, { sub: 'twin', name: 'Tim' })
    const first = login.json().refreshToken
    const second = (await refresh(a, first)).json().refreshToken
    const third = await refresh(a, second)
    t.equal(third.statusCode, 200)
    t.equal((await refresh(b, first)).statusCode, 401, 'a token two rotations old is reuse on B')
    t.equal((await refresh(a, third.json().refreshToken)).statusCode, 401, 'and the whole session is gone on A')
  })

  await t.test('logging out everywhere on B ends the sessions A started', async (t) => {
    const first = (await loginWithGoogle(a, { sub: 'everywhere', name: 'Eve' })).json()
    const second = (await loginWithGoogle(a, { sub: 'everywhere', name: 'Eve' })).json()
    const out = await b.app.inject({ method: 'POST', url: '/auth/logout-all', headers: { authorization: `Bearer ${second.accessToken}` } })
    t.equal(out.statusCode, 204, { body: out.body })
    t.equal((await refresh(a, first.refreshToken)).statusCode, 401, 'the first session is over')
    t.equal((await refresh(a, second.refreshToken)).statusCode, 401, 'and the second')
  })

  await t.test('a signup ticket issued on A is used on B, once', async (t) => {
    const first = await loginWithGoogle(a, { sub: 'newcomer', email: 'nell@example.com' })
    t.equal(first.json().status, 'signup_required', { body: first.body })
    const { signupToken } = first.json()
    const signup = await b.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Nell' } })
    t.equal(signup.statusCode, 201, { body: signup.body })
    const again = await a.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Nell' } })
    t.equal(again.statusCode, 401, 'the ticket B used is gone for A')
    t.equal(again.json().error, 'invalid_signup_token')
  })

  await t.test('an SDK ID token spent on A is refused on B', async (t) => {
    const { idToken, nonce } = await googleSdkIdToken(a, { sub: 'sdk-user', name: 'Sid' })
    const login = (gateway: GatewayUnderTest) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken, nonce } })
    t.equal((await login(a)).statusCode, 200)
    const replay = await login(b)
    t.equal(replay.statusCode, 401)
    t.equal(replay.json().error, 'invalid_grant')
  })

  await t.test('the rate limit counts one address across both instances', async (t) => {
    // An address of its own, so nothing else in this file counts against it.
    const attempt = (gateway: GatewayUnderTest) =>
      gateway.app.inject({
        method: 'POST',
        url: '/oauth/token',
        remoteAddress: '198.51.100.23',
        headers: { authorization: `Basic ${Buffer.from('nobody:wrong').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'grant_type=client_credentials',
      })
    for (let i = 0; i < TOKEN_RATE_LIMIT; i++) {
      t.equal((await attempt(i % 2 === 0 ? a : b)).statusCode, 401, `attempt ${i + 1} (on ${i % 2 === 0 ? 'A' : 'B'}) is counted and answered`)
    }
    const limited = await attempt(a)
    t.equal(limited.statusCode, 429, `the ${TOKEN_RATE_LIMIT + 1}th attempt is refused: A counted B's attempts too`)
    t.equal(limited.json().error, 'rate_limited')
  })
}

/** Where a user's sessions live in a topology, now. */
export interface SessionHome {
  master: TestRedis
  /** None while a new master has no replica yet. */
  replica: TestRedis | undefined
}

export type FindSessionHome = (userId: string) => Promise<SessionHome>

/**
 * How a supervisor starts a crashed server again once its replica took over: by default as it
 * was (a Cluster node's own nodes.conf makes it a replica of the node that replaced it).
 */
export type RestartCrashed = (crashed: TestRedis, replacement: TestRedis) => Promise<void>

interface Client {
  account: { sub: string; name: string }
  token: string
  /** When the last refresh that succeeded was sent. */
  lastSuccessSentAt: number
}

/** A session a 401 ended, with the token it refused. */
interface LostSession {
  userId: string
  sessionId: string
  generation: number
  /** The 401's message, and when it came: ms after the crash (-Infinity: before it). */
  said: string
  at: number
}

const CLIENTS = 20
const RECOVERY_DEADLINE_MS = 25_000
/** How far behind its master the replica is when the master dies. */
const REPLICA_BEHIND_MS = 300

/**
 * Twenty clients keep refreshing, alternately on A and B, and the master holding the first
 * client's sessions is SIGKILLed while its replica is 300 ms behind (its link was cut while
 * it could not reconnect, as over a congested network; on loopback a replica is otherwise
 * never behind at all). The replica takes over; the crashed server is started again
 * (restartCrashed) and comes back as a replica. A 503 is fine (the client keeps its token
 * and retries); a 401 costs the session (the client logs in again and goes on). With
 * REDIS_WAIT_REPLICAS=0, rotations the master answered in those 300 ms are lost with it: the
 * client's token is then ahead of the session the new master holds, and that is the only 401
 * allowed. Those sessions are counted; with REDIS_WAIT_REPLICAS ≥ 1 there must be none.
 */
export async function refreshThroughFailover(
  t: Test,
  { a, b }: GatewayPair,
  sessionHome: FindSessionHome,
  restartCrashed: RestartCrashed = (crashed) => crashed.start(),
): Promise<void> {
  const statuses = new Map<string, number>()
  const count = (what: string) => statuses.set(what, (statuses.get(what) ?? 0) + 1)
  const unexpected: string[] = []
  const lost: LostSession[] = []
  let running = true

  /** Logs the client in, retrying through an outage as an app would; false once the run is over. */
  const logIn = async (client: Client): Promise<void> => {
    for (;;) {
      const login = await loginWithGoogle(a, client.account).catch(() => undefined)
      count(`login ${login?.statusCode ?? 503}`)
      if (login?.statusCode === 200) {
        client.token = login.json().refreshToken
        return
      }
      if (login !== undefined && login.statusCode !== 503) unexpected.push(`login: ${login.statusCode} ${login.body}`)
      if (!running) throw new Error(`${client.account.sub} could not log in again before the end`)
      await sleep(50)
    }
  }
  let crashedAt = Infinity
  const loseSession = (client: Client, answer: { json(): { message?: string } }) => {
    const parts = parseRefreshToken(client.token)!
    const at = Math.round(performance.now() - crashedAt)
    lost.push({ userId: parts.userId, sessionId: parts.sessionId, generation: parts.generation, said: String(answer.json().message), at })
  }

  const clients: Client[] = Array.from({ length: CLIENTS }, (_, i) => ({ account: { sub: `busy-${i}`, name: `Busy ${i}` }, token: '', lastSuccessSentAt: 0 }))
  for (const client of clients) await logIn(client)
  const load = clients.map(async (client, index) => {
    let turn = index
    while (running) {
      const gateway = turn++ % 2 === 0 ? a : b
      const sentAt = performance.now()
      const answer = await refresh(gateway, client.token)
      count(`refresh ${answer.statusCode}`)
      if (answer.statusCode === 200) {
        client.token = answer.json().refreshToken
        client.lastSuccessSentAt = sentAt
        await sleep(10)
      } else if (answer.statusCode === 401) {
        loseSession(client, answer)
        await logIn(client)
      } else {
        if (answer.statusCode !== 503) unexpected.push(`refresh: ${answer.statusCode} ${answer.body}`)
        await sleep(50)
      }
    }
  })

  await sleep(1000)
  const firstUser = parseRefreshToken(clients[0]!.token)!.userId
  const { master, replica } = await sessionHome(firstUser)
  if (!replica) throw new Error(`the master on ${master.port} has no replica to take over`)
  replica.pause()
  const admin = new Redis({ host: '127.0.0.1', port: master.port, lazyConnect: true })
  await admin.connect()
  await admin.call('CLIENT', 'KILL', 'TYPE', 'replica')
  admin.disconnect()
  await sleep(REPLICA_BEHIND_MS)
  crashedAt = performance.now()
  await master.crash()
  replica.resume()
  let replacedAfter: number | undefined
  let recoveredAfter: number | undefined
  while (performance.now() - crashedAt < RECOVERY_DEADLINE_MS) {
    const home = replacedAfter === undefined ? await sessionHome(firstUser) : undefined
    if (home && home.master !== master) {
      replacedAfter = performance.now() - crashedAt
      // As a supervisor would once the takeover is known (sessionHome says so only then): the
      // crashed server comes back and becomes a replica of the new master.
      await restartCrashed(master, home.master)
    }
    // Recovered: every client has refreshed with a request sent after the takeover.
    if (replacedAfter !== undefined && clients.every((client) => client.lastSuccessSentAt >= crashedAt + replacedAfter!)) {
      recoveredAfter = performance.now() - crashedAt
      break
    }
    await sleep(50)
  }
  await sleep(1000)
  running = false
  await Promise.all(load)

  // A later refresh of every session: the rotations answered before the crash are either
  // on the new master or lost. A 503 (a loaded machine's stall can start another failover)
  // is retried, as a client would.
  const laterUntil = performance.now() + RECOVERY_DEADLINE_MS
  for (const client of clients) {
    let answer = await refresh(a, client.token)
    while (answer.statusCode === 503 && performance.now() < laterUntil) {
      await sleep(50)
      answer = await refresh(a, client.token)
    }
    count(`later refresh ${answer.statusCode}`)
    if (answer.statusCode === 401) loseSession(client, answer)
    else if (answer.statusCode !== 200) unexpected.push(`later refresh: ${answer.statusCode} ${answer.body}`)
  }

  t.ok(replacedAfter !== undefined, 'a replica took over the crashed master')
  t.ok(recoveredAfter !== undefined, `every client refreshed again within ${RECOVERY_DEADLINE_MS / 1000} s of the crash, without restarting the gateways`)
  t.same(unexpected, [], 'every answer was 200, 503 or 401')
  for (const session of lost) {
    // The only acceptable 401: the session lives on, behind the client's token.
    const live = await a.redis.hget(sessionKeys.session(session.userId, session.sessionId), 'gen')
    t.ok(live !== null && Number(live) < session.generation, `a 401 only for rotations lost with the master (session at ${live}, token at ${session.generation}; "${session.said}" ${session.at} ms after the crash)`)
  }
  if (a.config.redisWaitReplicas > 0) t.equal(lost.length, 0, `no session lost with REDIS_WAIT_REPLICAS=${a.config.redisWaitReplicas}`)
  const seconds = (ms: number | undefined) => (ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`)
  t.comment(
    `crash of a master ${REPLICA_BEHIND_MS} ms ahead of its replica, under refresh load from ${CLIENTS} clients: ` +
      `a replica took over after ${seconds(replacedAfter)}, every client refreshed again after ${seconds(recoveredAfter)}; ` +
      `answers ${JSON.stringify(Object.fromEntries(statuses))}; sessions lost: ${lost.length} with REDIS_WAIT_REPLICAS=${a.config.redisWaitReplicas}`,
  )
}
