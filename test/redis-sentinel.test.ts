// The gateway on a Sentinel group (a master, its replica, three Sentinels): start-up checks
// the master it is given; a write waits for its replica when asked to; two instances share
// the group and tell the whole login story between them; and the master crashing under
// refresh load costs 503s while the Sentinels promote the replica, never a restart.

import { Redis } from 'ioredis'
import t from 'tap'
import { connectRedis, replicatedWrite } from '../src/storage/redis.js'
import { startTestGateway } from './support/gateway.js'
import type { TestRedis } from './support/redis.js'
import { SENTINEL_MASTER_NAME, startSentinelGroup } from './support/redis-sentinel.js'
import { loginStoryAcrossInstances, refreshThroughFailover, startGatewayPair } from './support/shared-redis.js'

/** REDIS_WAIT_REPLICAS of the gateways: with 1 no session may be lost to the failover. */
const WAIT_REPLICAS = 1

const group = await startSentinelGroup()
t.teardown(() => group.stop())
const sentinels = group.sentinelAddresses
const target = { sentinels, sentinelName: SENTINEL_MASTER_NAME }
const quiet = { warn() {} }

async function setEvictionPolicy(server: TestRedis, policy: string): Promise<void> {
  const admin = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true })
  await admin.connect()
  await admin.config('SET', 'maxmemory-policy', policy)
  admin.disconnect()
}

t.test('start-up finds the master through the Sentinels and refuses it when it evicts', async (t) => {
  const master = await group.currentMaster()
  await setEvictionPolicy(master, 'volatile-lru')
  t.teardown(() => setEvictionPolicy(master, 'noeviction'))
  await t.rejects(connectRedis(target, quiet), { message: 'Redis maxmemory-policy is "volatile-lru"; the gateway requires "noeviction"' })
  await setEvictionPolicy(master, 'noeviction')
  const redis = await connectRedis(target, quiet)
  t.teardown(() => redis.disconnect())
  t.match(await redis.info('replication'), /role:master/, 'connected to the master, not the replica')
})

t.test('a write waits for its replica when asked to, in the same round trip', async (t) => {
  const redis = await connectRedis(target, quiet)
  t.teardown(() => redis.disconnect())
  redis.defineCommand('stamp', { numberOfKeys: 1, lua: "redis.call('SET', KEYS[1], ARGV[1]); return {ARGV[1], 'stamped'}" })
  t.same(await replicatedWrite(redis, 0, 'stamp', 'wait:key', 'zero'), ['zero', 'stamped'], 'replicas 0: the command as it is')
  t.same(await replicatedWrite(redis, 1, 'stamp', 'wait:key', 'one'), ['one', 'stamped'], "acknowledged: the script's own reply")
  t.same(await replicatedWrite(redis, 1, 'stampBuffer', 'wait:key', 'two'), [Buffer.from('two'), Buffer.from('stamped')], 'the Buffer form of a script too')

  const master = await group.currentMaster()
  const [replica] = group.servers.filter((server) => server !== master)
  replica!.pause()
  const started = Date.now()
  try {
    await t.rejects(replicatedWrite(redis, 1, 'stamp', 'wait:key', 'three'), { name: 'StorageUnavailable', message: 'the write reached 0 of 1 replica(s) within 1000 ms' }, 'the replica silent: 503')
  } finally {
    replica!.resume()
  }
  t.ok(Date.now() - started < 1400, 'after the WAIT timeout, not a command timeout later')
  await t.rejects(replicatedWrite(redis, 2, 'set', 'wait:key', 'four'), { name: 'StorageUnavailable', message: 'the write reached 1 of 2 replica(s) within 1000 ms' }, 'more replicas than there are: 503')
  await t.rejects(replicatedWrite(redis, 1, 'hset', 'wait:key', 'field', 'value'), /WRONGTYPE/, "the write's own error comes first")
})

t.test('a gateway whose REDIS_WAIT_REPLICAS is not the group\'s replica count says so when it starts', async (t) => {
  /** The warnings a gateway started with `waitReplicas` logged; it still starts. */
  async function startupWarnings(waitReplicas: number): Promise<string[]> {
    const lines: string[] = []
    const gateway = await startTestGateway({
      redis: group.env,
      env: { REDIS_WAIT_REPLICAS: String(waitReplicas) },
      logger: { level: 'warn', stream: { write: (line: string) => lines.push(line) } },
    })
    await gateway.close()
    return lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level === 40).map((line) => line.msg)
  }
  t.match(await startupWarnings(0), [/^REDIS_WAIT_REPLICAS is 0, but the master has 1 replica\(s\) online: a failover or a planned switch \(SENTINEL FAILOVER\) can erase session changes held by fewer replicas, logging users out; set REDIS_WAIT_REPLICAS=1$/])
  t.same(await startupWarnings(1), [], 'every replica waited for: nothing to say')
  t.match(await startupWarnings(2), [/^REDIS_WAIT_REPLICAS is 2, but the master has 1 replica\(s\) online: every login, refresh and logout of its sessions answers 503 until 2 are$/])
})

t.test('two gateway instances on one Sentinel group', async (t) => {
  const pair = await startGatewayPair(group.env, { REDIS_WAIT_REPLICAS: String(WAIT_REPLICAS) })
  t.teardown(() => pair.close())
  // The resource server's own client, as the verifier's README has it: fail fast, never queue.
  const sessionRedis = new Redis({ sentinels, name: SENTINEL_MASTER_NAME, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, lazyConnect: true })
  sessionRedis.on('error', () => {})
  await sessionRedis.connect()
  t.teardown(() => sessionRedis.disconnect())

  await loginStoryAcrossInstances(t, pair, sessionRedis)

  await t.test('the master crashes under refresh load', (t) =>
    refreshThroughFailover(
      t,
      pair,
      async () => {
        const master = await group.currentMaster()
        return { master, replica: group.servers.find((server) => server !== master) }
      },
      // Started as it was, it would call itself master until a Sentinel next reads its INFO
      // (up to 10 s), and a failover meanwhile (the new master stalled for a second on a
      // loaded machine) could promote it: docs/operations.md, "Persistence and failover".
      (crashed, replacement) => crashed.start(['--replicaof', '127.0.0.1', String(replacement.port)]),
    ),
  )
})
