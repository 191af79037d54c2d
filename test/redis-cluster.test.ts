// The gateway on a Redis Cluster (three masters, a replica each): two instances share it and
// tell the whole login story between them, which only works if every script and multi-key
// command keeps its keys in one hash slot; a write's WAIT runs on the master of its key;
// and a master crashing under refresh load costs 503s, never a restart.

import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import t from 'tap'
import { sessionKeys } from '../verifier/session-keys.js'
import { connectRedis, inRedis, replicatedWrite } from '../src/storage/redis.js'
import { replicaWarnings } from '../src/storage/replica-count.js'
import type { TestRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { loginStoryAcrossInstances, refreshThroughFailover, startGatewayPair } from './support/shared-redis.js'

/** REDIS_WAIT_REPLICAS of the gateways: with 1 no session may be lost to the failover. */
const WAIT_REPLICAS = 1

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())
const seeds = cluster.seeds
const quiet = { warn() {} }

t.test('start-up refuses a cluster with an evicting master, whichever master it is', async (t) => {
  // Not the master the client dials first: checking only that one is not enough.
  const evicting = (await cluster.masters()).find((master) => master.port !== seeds[0]!.port)!
  const setPolicy = async (policy: string) => {
    const admin = await cluster.connectTo(evicting)
    await admin.config('SET', 'maxmemory-policy', policy)
    admin.disconnect()
  }
  await setPolicy('allkeys-lru')
  t.teardown(() => setPolicy('noeviction'))
  await t.rejects(connectRedis({ clusterNodes: seeds }, quiet), {
    message: `Redis maxmemory-policy is "allkeys-lru" on 127.0.0.1:${evicting.port}; the gateway requires "noeviction"`,
  })
  await setPolicy('noeviction')
  const redis = await connectRedis({ clusterNodes: seeds }, quiet)
  redis.disconnect()
})

t.test('REDIS_WAIT_REPLICAS above what a master has is named at start-up, master by master', async (t) => {
  const redis = await connectRedis({ clusterNodes: seeds }, quiet)
  t.teardown(() => redis.disconnect())
  t.same(await replicaWarnings(redis, 0, false), [], 'a Cluster hands over without loss when asked to (CLUSTER FAILOVER): 0 is no mistake')
  t.same(await replicaWarnings(redis, 1, false), [])
  const tooMany = await replicaWarnings(redis, 2, false)
  t.equal(tooMany.length, 3, 'one line per master')
  for (const line of tooMany) t.match(line, /^REDIS_WAIT_REPLICAS is 2, but the master 127\.0\.0\.1:\d+ has 1 replica\(s\) online: every login, refresh and logout of its sessions answers 503 until 2 are$/)
})

t.test("a write's WAIT runs on the master of the write's key, in the same round trip", async (t) => {
  const redis = await connectRedis({ clusterNodes: seeds }, quiet)
  t.teardown(() => redis.disconnect())
  redis.defineCommand('touchBoth', { numberOfKeys: 2, lua: "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return ARGV[1]" })
  // One user per master, so that every master's replica is silenced once.
  const masters = await cluster.masters()
  const userOn = new Map<TestRedis, string>()
  for (let i = 0; userOn.size < masters.length; i++) {
    const master = await cluster.masterOf(sessionKeys.index(`wait-${i}`))
    if (!userOn.has(master)) userOn.set(master, `wait-${i}`)
  }
  const write = (userId: string, value: string) => replicatedWrite(redis, 1, 'touchBoth', sessionKeys.index(userId), sessionKeys.scopes(userId), value)

  for (const [master, userId] of userOn) {
    t.equal(await write(userId, 'acknowledged'), 'acknowledged', "acknowledged: the script's own reply")
    const [replica] = await cluster.replicasOf(master)
    const elsewhere = [...userOn].find(([other]) => other !== master)![1]
    replica!.pause()
    try {
      await t.rejects(write(userId, 'unacknowledged'), { name: 'StorageUnavailable', message: 'the write reached 0 of 1 replica(s) within 1000 ms' }, "its master's replica silent: 503")
      t.equal(await write(elsewhere, 'elsewhere'), 'elsewhere', 'a key on another master is acknowledged meanwhile')
    } finally {
      replica!.resume()
    }
  }
  t.equal(await replicatedWrite(redis, 1, 'set', sessionKeys.index('wait-0'), 'built-in'), 'OK', 'a built-in command too')
})

t.test('a write that waits for its replica follows its slot to the new master after a failover', async (t) => {
  const redis = await connectRedis({ clusterNodes: seeds }, quiet)
  t.teardown(() => redis.disconnect())
  const key = sessionKeys.index('follow-me')
  t.equal(await replicatedWrite(redis, 1, 'set', key, 'before'), 'OK')
  const master = await cluster.masterOf(key)
  const [replica] = await cluster.replicasOf(master)
  // A failover the replica asks for (CLUSTER FAILOVER): no data lost, the old master lives on as its replica.
  const admin = await cluster.connectTo(replica!)
  await admin.call('CLUSTER', 'FAILOVER')
  admin.disconnect()
  const deadline = Date.now() + 10_000
  while ((await cluster.masterOf(key)) === master && Date.now() < deadline) await sleep(50)
  t.equal(await cluster.masterOf(key), replica, 'the replica took over')
  let written: unknown
  while (written === undefined && Date.now() < deadline) {
    written = await replicatedWrite(redis, 1, 'set', key, 'after').catch(() => sleep(100).then(() => undefined))
  }
  t.equal(written, 'OK', 'written and acknowledged on the new master within seconds, by the same client')
})

t.test('two gateway instances on one cluster', async (t) => {
  const pair = await startGatewayPair(cluster.env, { REDIS_WAIT_REPLICAS: String(WAIT_REPLICAS) })
  t.teardown(() => pair.close())
  // The resource server's own client, as the verifier's README has it: fail fast, never queue.
  const sessionRedis = new Cluster(seeds, { enableOfflineQueue: false, lazyConnect: true, redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 500 } })
  sessionRedis.on('error', () => {})
  await sessionRedis.connect()
  t.teardown(() => sessionRedis.disconnect())

  await loginStoryAcrossInstances(t, pair, sessionRedis)

  await t.test('a master crashes under refresh load', (t) =>
    refreshThroughFailover(t, pair, async (userId) => {
      const master = await cluster.masterOf(sessionKeys.index(userId))
      return { master, replica: (await cluster.replicasOf(master))[0] }
    }),
  )
})

t.test('a Cluster that lost every node refuses at once, and queues nothing for its return', async (t) => {
  const lost = await startRedisCluster()
  t.teardown(() => lost.stop())
  const redis = await connectRedis({ clusterNodes: lost.seeds }, quiet)
  t.teardown(() => redis.disconnect())
  t.equal(await inRedis(redis, () => redis.set(sessionKeys.index('before'), 'stored')), 'OK')

  await Promise.all(lost.nodes.map((node) => node.crash()))
  while ((redis as Cluster).status === 'ready') await sleep(10)
  await t.rejects(
    inRedis(redis, () => redis.get(sessionKeys.index('before'))),
    { name: 'StorageUnavailable', cause: { message: /^the Redis Cluster is not ready/ } },
    'refused without waiting for its deadline (not "Redis did not answer")',
  )
})
