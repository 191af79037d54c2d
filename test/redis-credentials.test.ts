// Redis that requires a password, as a production one should. A Cluster's and a Sentinel
// group's servers take theirs from REDIS_PASSWORD (REDIS_USERNAME for an ACL user), the
// Sentinels theirs from REDIS_SENTINEL_PASSWORD; one Redis takes it in REDIS_URL. With them
// two gateways tell the whole login story; without them, or with a wrong one, start-up fails
// and says that Redis refused the credentials, never what they were.

import { Cluster, Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { connectRedis, type RedisCredentials, type RedisLogger } from '../src/storage/redis.js'
import { startRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { SENTINEL_MASTER_NAME, startSentinelGroup } from './support/redis-sentinel.js'
import { loginStoryOn, startupOutcome } from './support/shared-redis.js'

const CLUSTER_PASSWORD = 'cluster-pass-7c1e'
const SERVER_PASSWORD = 'server-pass-4b2d'
const SENTINEL_PASSWORD = 'sentinel-pass-9f0a'
const WRONG_PASSWORD = 'wrong-pass-e63b'
const REFUSED = /Redis refused the credentials: check REDIS_PASSWORD/

/** What the gateway logs while connecting, to show no password is in it. */
function recordingLogger(): RedisLogger & { lines: string[] } {
  const lines: string[] = []
  return { lines, warn: (object, message) => lines.push(`${message} ${JSON.stringify(object)}`) }
}

/** Start-up's failure: its message, and that no password is in it or in what was logged. */
async function refusal(t: Test, connecting: (log: RedisLogger) => Promise<{ disconnect(): void }>): Promise<string> {
  const log = recordingLogger()
  const message = await startupOutcome(connecting(log))
  for (const password of [CLUSTER_PASSWORD, SERVER_PASSWORD, SENTINEL_PASSWORD, WRONG_PASSWORD]) {
    t.notOk([message, ...log.lines].some((text) => text.includes(password)), `the password ${password} is neither in the error nor in the log`)
  }
  return message
}

t.test('a Cluster whose nodes require a password', async (t) => {
  const cluster = await startRedisCluster({ password: CLUSTER_PASSWORD })
  t.teardown(() => cluster.stop())
  const seeds = cluster.seeds
  const connectWith = (credentials?: RedisCredentials) => (log: RedisLogger) => connectRedis({ clusterNodes: seeds, credentials }, log)

  await t.test('without REDIS_PASSWORD, or with a wrong one, start-up fails and says why', async (t) => {
    const missing = await refusal(t, connectWith())
    t.match(missing, /NOAUTH Authentication required/)
    t.match(missing, REFUSED)
    t.match(await refusal(t, connectWith({ password: WRONG_PASSWORD })), /WRONGPASS/)
  })

  await t.test('an ACL user: REDIS_USERNAME with its password', async (t) => {
    for (const node of cluster.nodes) {
      const admin = await cluster.connectTo(node)
      await admin.call('ACL', 'SETUSER', 'gateway', 'on', '>gateway-pass-51d8', '~*', '&*', '+@all')
      admin.disconnect()
    }
    const redis = await connectRedis({ clusterNodes: seeds, credentials: { username: 'gateway', password: 'gateway-pass-51d8' } }, recordingLogger())
    t.teardown(() => redis.disconnect())
    t.equal(await redis.set('acl-user-wrote', 'yes'), 'OK')
    t.equal(await redis.call('ACL', 'WHOAMI'), 'gateway', 'as that user, not the default one')
    t.match(await refusal(t, connectWith({ username: 'gateway', password: CLUSTER_PASSWORD })), /WRONGPASS/, "the default user's password is not the user's")
  })

  await t.test('two gateways with REDIS_PASSWORD tell the whole login story', (t) =>
    loginStoryOn(t, cluster.env, new Cluster(seeds, { enableOfflineQueue: false, lazyConnect: true, redisOptions: { password: CLUSTER_PASSWORD, maxRetriesPerRequest: 0, commandTimeout: 500 } })),
  )
})

t.test('a Sentinel group whose servers and Sentinels require passwords of their own', async (t) => {
  const group = await startSentinelGroup({ password: SERVER_PASSWORD, sentinelPassword: SENTINEL_PASSWORD })
  t.teardown(() => group.stop())
  const sentinels = group.sentinelAddresses
  const connectWith = (credentials?: RedisCredentials, sentinelCredentials?: RedisCredentials) => (log: RedisLogger) =>
    connectRedis({ sentinels, sentinelName: SENTINEL_MASTER_NAME, credentials, sentinelCredentials }, log)

  await t.test("without the servers' password, or without the Sentinels', start-up fails and says why", async (t) => {
    t.match(await refusal(t, connectWith(undefined, { password: SENTINEL_PASSWORD })), REFUSED)
    t.match(await refusal(t, connectWith({ password: WRONG_PASSWORD }, { password: SENTINEL_PASSWORD })), /WRONGPASS/)
    // The Sentinels are asked again and again until start-up gives up (10 s).
    t.match(await refusal(t, connectWith({ password: SERVER_PASSWORD })), /not ready within 10 s of start-up \(last connection error: .*NOAUTH.*\); Redis refused the credentials/)
  })

  await t.test('two gateways with REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD tell the whole login story', (t) =>
    loginStoryOn(
      t,
      group.env,
      new Redis({ sentinels, name: SENTINEL_MASTER_NAME, password: SERVER_PASSWORD, sentinelPassword: SENTINEL_PASSWORD, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, lazyConnect: true }),
    ),
  )
})

t.test('one Redis takes its password in REDIS_URL; without it start-up says Redis refused the credentials', async (t) => {
  const server = await startRedis({ args: ['--requirepass', SERVER_PASSWORD] })
  t.teardown(() => server.stop())
  const redis = await connectRedis({ url: `redis://:${SERVER_PASSWORD}@127.0.0.1:${server.port}` }, recordingLogger())
  t.teardown(() => redis.disconnect())
  t.equal(await redis.set('url-password', 'yes'), 'OK')
  t.match(await refusal(t, (log) => connectRedis({ url: server.url }, log)), REFUSED)
})
