// Refresh load on Redis while an operator maintains it (a Cluster's resharding and handovers,
// a Sentinel group's handover): a gateway with users logged in, clients refreshing throughout,
// and, on a Cluster, where their sessions live.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import { sessionKeys } from '../../verifier/session-keys.js'
import { parseRefreshToken } from '../../src/sessions/refresh-token.js'
import { LOST_DATA_MESSAGE } from '../../src/storage/lost-data.js'
import { loginWithGoogle, startTestGateway, type GatewayUnderTest } from './gateway.js'
import type { TestRedis } from './redis.js'
import type { TestRedisCluster } from './redis-cluster.js'
import { call } from '../verifier/fixtures/resource-server.js'

const CLIENTS = 30

/** How many times a busy gateway said Redis lost its data. */
const lostDataReports = new WeakMap<GatewayUnderTest, () => number>()

/** A gateway on the Redis of `redisEnv` and CLIENTS users logged in there. */
export async function busyGateway(t: Test, redisEnv: Record<string, string>, waitReplicas: number, name: string) {
  const errors: string[] = []
  const gateway = await startTestGateway({
    redis: { ...redisEnv, REDIS_WAIT_REPLICAS: String(waitReplicas) },
    logger: { level: 'error', stream: { write: (line: string) => errors.push(JSON.parse(line).msg) } },
  })
  t.teardown(() => gateway.close())
  lostDataReports.set(gateway, () => errors.filter((message) => message === LOST_DATA_MESSAGE).length)
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const login = await loginWithGoogle(gateway, { sub: `${name}-${i}`, name: `${name} ${i}` })
      return { token: login.json().refreshToken as string }
    }),
  )
  return { gateway, clients }
}

/**
 * Every client refreshes in a loop while `operation` runs, and once more after it; every
 * answer must be 200 (or 503, with `unavailableAllowed`: never a 401). `operation` says what
 * it did, for the test's comment.
 */
export async function refreshingThrough(
  t: Test,
  gateway: GatewayUnderTest,
  clients: { token: string }[],
  operation: () => Promise<string>,
  { resourceServer, unavailableAllowed = false }: { resourceServer?: FastifyInstance; unavailableAllowed?: boolean } = {},
): Promise<void> {
  const statuses = new Map<number, number>()
  const refused: string[] = []
  const refresh = async (client: { token: string }) => {
    const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: client.token } })
    statuses.set(answer.statusCode, (statuses.get(answer.statusCode) ?? 0) + 1)
    if (answer.statusCode !== 200) {
      if (!(unavailableAllowed && answer.statusCode === 503)) refused.push(`${answer.statusCode} ${answer.body}`)
      return answer.statusCode
    }
    client.token = answer.json().refreshToken
    if (resourceServer) {
      // The new access token, at a resource server that checks its session in the same Redis.
      const checked = await call(resourceServer, '/me', answer.json().accessToken)
      if (checked.statusCode !== 200) refused.push(`resource server: ${checked.statusCode} ${checked.body}`)
    }
    return answer.statusCode
  }
  let running = true
  const load = clients.map(async (client) => {
    while (running) {
      const status = await refresh(client)
      if (status === 401) return
      await sleep(status === 200 ? 5 : 50)
    }
  })
  const started = performance.now()
  const done = await operation()
  const tookMs = performance.now() - started
  await sleep(1000)
  running = false
  await Promise.all(load)
  for (const client of clients) t.equal(await refresh(client), 200, 'the session refreshes afterwards')

  const expected = unavailableAllowed ? '200 or 503' : '200'
  const checked = resourceServer ? ', and every access token passed the revocation check' : ''
  t.same(refused, [], `every refresh answered ${expected}${checked}: maintenance ${unavailableAllowed ? '' : 'is no outage (no 503) and '}logs nobody out (no 401)`)
  const reports = lostDataReports.get(gateway)
  if (reports) t.equal(reports(), 0, 'no loss of data reported: the markers moved with the data')
  t.comment(`${done} in ${(tookMs / 1000).toFixed(1)} s under load from ${clients.length} clients; answers ${JSON.stringify(Object.fromEntries(statuses))}`)
}

/** Runs `command` on an admin connection to `node`. */
export async function onNode<T>(cluster: TestRedisCluster, node: TestRedis, command: (admin: Redis) => Promise<T>): Promise<T> {
  const admin = await cluster.connectTo(node)
  try {
    return await command(admin)
  } finally {
    admin.disconnect()
  }
}

/** The master that holds the session of `refreshToken` now. */
export function homeOf(cluster: TestRedisCluster, refreshToken: string): Promise<TestRedis> {
  return cluster.masterOf(sessionKeys.index(parseRefreshToken(refreshToken)!.userId))
}
