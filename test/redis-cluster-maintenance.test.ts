// A Redis Cluster maintained while clients refresh, as an operator does it:
// - resharding: every slot of one master moved to another (`redis-cli --cluster reshard`, as
//   when a master is emptied before it is removed), and a new master with its replica joining
//   and taking its share (`add-node`, then `rebalance --cluster-use-empty-masters`), a node the
//   gateway never heard of at start-up. While a slot moves, a session's keys can be on either
//   node (ASK) or split between them (TRYAGAIN), and once it has moved the old master answers
//   MOVED; a write that waits for its replica (REDIS_WAIT_REPLICAS) is refused without having
//   run until it is sent again;
// - a rolling upgrade: every master hands over to its replica (CLUSTER FAILOVER), which must
//   find the replica's connection ready, and may cut a rotation's answer off (its connection
//   closed, its WAIT unblocked): the rotation is run again, within its grace.
// Every refresh must succeed: maintenance is no outage.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { sessionKeys } from '../verifier/session-keys.js'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { loginWithGoogle, startTestGateway, type GatewayUnderTest } from './support/gateway.js'
import type { TestRedis } from './support/redis.js'
import { startRedisCluster, type TestRedisCluster } from './support/redis-cluster.js'

const CLIENTS = 30

t.test('every slot of one master moves to another under refresh load', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  for (const waitReplicas of [0, 1]) {
    await t.test(`REDIS_WAIT_REPLICAS=${waitReplicas}`, async (t) => {
      const { gateway, clients } = await busyGateway(t, cluster, waitReplicas, `reshard-${waitReplicas}`)
      // The master holding the most sessions gives all its slots to another.
      const homes = await Promise.all(clients.map((client) => homeOf(cluster, client.token)))
      const masters = await cluster.masters()
      const sessionsOn = (master: TestRedis) => homes.filter((home) => home === master).length
      const source = masters.reduce((most, master) => (sessionsOn(master) > sessionsOn(most) ? master : most))
      const target = masters.find((master) => master !== source)!
      t.ok(sessionsOn(source) > 0, `${sessionsOn(source)} of the sessions live on the master that is emptied`)

      await refreshingThrough(t, gateway, clients, async () => {
        await cluster.redisCli('reshard', '--cluster-from', await cluster.idOf(source), '--cluster-to', await cluster.idOf(target), '--cluster-slots', '16384', '--cluster-yes')
        return 'moved every slot of one master'
      })
      t.notOk((await cluster.masters()).includes(source), 'the emptied master serves no slot')
    })
  }
})

t.test('a new master joins and takes its share of the slots under refresh load (REDIS_WAIT_REPLICAS=1)', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  const { gateway, clients } = await busyGateway(t, cluster, 1, 'rebalance')
  const newcomer = await cluster.addMaster()

  await refreshingThrough(t, gateway, clients, async () => {
    await cluster.redisCli('rebalance', '--cluster-use-empty-masters')
    return 'rebalanced onto a new master'
  })
  const homes = await Promise.all(clients.map((client) => homeOf(cluster, client.token)))
  t.ok(homes.includes(newcomer), `${homes.filter((home) => home === newcomer).length} of the sessions live on the new master now`)
})

t.test('every master hands over to its replica under refresh load (a rolling upgrade)', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  for (const waitReplicas of [0, 1]) {
    await t.test(`REDIS_WAIT_REPLICAS=${waitReplicas}`, async (t) => {
      const { gateway, clients } = await busyGateway(t, cluster, waitReplicas, `handover-${waitReplicas}`)
      await refreshingThrough(t, gateway, clients, async () => {
        for (const master of await cluster.masters()) {
          const [replica] = await cluster.replicasOf(master)
          await onNode(cluster, replica!, (admin) => admin.call('CLUSTER', 'FAILOVER'))
          const deadline = Date.now() + 10_000
          while (!(await cluster.masters()).includes(replica!)) {
            if (Date.now() > deadline) throw new Error(`the replica on ${replica!.port} did not take over`)
            await sleep(20)
          }
        }
        return 'handed every master over to its replica'
      })
    })
  }
})

t.test("a rotation whose answer was lost is run again, and answers as the first run did", async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  // Closes the gateway's connections to `node` (not the replication link) while a refresh is
  // under way on it, and answers that refresh.
  const refreshCutOff = async (gateway: GatewayUnderTest, refreshToken: string, node: TestRedis, meanwhile: () => void) => {
    const answer = gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
    await sleep(200)
    await onNode(cluster, node, (admin) => admin.call('CLIENT', 'KILL', 'TYPE', 'normal'))
    meanwhile()
    return answer
  }
  const refresh = (gateway: GatewayUnderTest, refreshToken: string) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

  await t.test('the connection closes before the rotation ran (its master paused for a handover)', async (t) => {
    for (const grace of ['10', '0']) {
      const gateway = await startTestGateway({ redis: cluster.env, env: { REFRESH_REUSE_GRACE: grace } })
      t.teardown(() => gateway.close())
      const token = (await loginWithGoogle(gateway, { sub: `cut-before-${grace}`, name: 'Cut Before' })).json().refreshToken as string
      const master = await homeOf(cluster, token)
      await onNode(cluster, master, (admin) => admin.call('CLIENT', 'PAUSE', '800', 'WRITE'))
      const answer = await refreshCutOff(gateway, token, master, () => {})
      if (grace === '0') {
        t.equal(answer.statusCode, 503, 'strict rotation: not run again (a second run would be reuse): 503')
        t.equal((await refresh(gateway, token)).statusCode, 200, 'nothing had rotated: the same token refreshes')
      } else {
        t.equal(answer.statusCode, 200, `within the grace: run again, 200 (${answer.body.slice(0, 80)})`)
        t.equal((await refresh(gateway, answer.json().refreshToken)).statusCode, 200, 'its successor refreshes')
      }
    }
  })

  await t.test("the WAIT is cut short after the rotation ran (REDIS_WAIT_REPLICAS=1)", async (t) => {
    const gateway = await startTestGateway({ redis: { ...cluster.env, REDIS_WAIT_REPLICAS: '1' } })
    t.teardown(() => gateway.close())
    const token = (await loginWithGoogle(gateway, { sub: 'cut-after', name: 'Cut After' })).json().refreshToken as string
    const master = await homeOf(cluster, token)
    const [replica] = await cluster.replicasOf(master)
    replica!.pause()
    const answer = await refreshCutOff(gateway, token, master, () => replica!.resume())
    t.equal(answer.statusCode, 200, `run again: the first run's successor, 200 (${answer.body.slice(0, 80)})`)
    const successor = answer.json().refreshToken as string
    t.equal(parseRefreshToken(successor)!.generation, parseRefreshToken(token)!.generation + 1, 'rotated once, not twice')
    t.equal((await refresh(gateway, successor)).statusCode, 200, 'the successor refreshes')
  })
})

/** A gateway on `cluster` and CLIENTS users logged in there. */
async function busyGateway(t: Test, cluster: TestRedisCluster, waitReplicas: number, name: string) {
  const gateway = await startTestGateway({ redis: { ...cluster.env, REDIS_WAIT_REPLICAS: String(waitReplicas) } })
  t.teardown(() => gateway.close())
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
 * answer must be 200. `operation` says what it did, for the test's comment.
 */
async function refreshingThrough(t: Test, gateway: GatewayUnderTest, clients: { token: string }[], operation: () => Promise<string>): Promise<void> {
  const statuses = new Map<number, number>()
  const refused: string[] = []
  const refresh = async (client: { token: string }) => {
    const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: client.token } })
    statuses.set(answer.statusCode, (statuses.get(answer.statusCode) ?? 0) + 1)
    if (answer.statusCode === 200) client.token = answer.json().refreshToken
    else refused.push(`${answer.statusCode} ${answer.body}`)
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

  t.same(refused, [], 'every refresh answered 200: slots on the move are no outage (no 503) and log nobody out (no 401)')
  t.comment(`${done} in ${(tookMs / 1000).toFixed(1)} s under load from ${clients.length} clients; answers ${JSON.stringify(Object.fromEntries(statuses))}`)
}

async function onNode<T>(cluster: TestRedisCluster, node: TestRedis, command: (admin: Redis) => Promise<T>): Promise<T> {
  const admin = await cluster.connectTo(node)
  try {
    return await command(admin)
  } finally {
    admin.disconnect()
  }
}

function homeOf(cluster: TestRedisCluster, refreshToken: string): Promise<TestRedis> {
  return cluster.masterOf(sessionKeys.index(parseRefreshToken(refreshToken)!.userId))
}

