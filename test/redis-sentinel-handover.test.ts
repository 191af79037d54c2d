// A Sentinel group's planned switch under refresh load (SENTINEL FAILOVER, as in a rolling
// upgrade). Unlike a Cluster's handover, the Sentinels promote the replica without pausing the
// master: until they reconfigure it as a replica (and close its clients), the old master still
// takes writes that no replica will ever hold. With REDIS_WAIT_REPLICAS=1 those writes are not
// acknowledged, so their refreshes answer 503 and the clients retry on the new master: nobody
// is logged out (no 401), and every session refreshes afterwards.

import { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { SENTINEL_MASTER_NAME, startSentinelGroup } from './support/redis-sentinel.js'
import { busyGateway, refreshingThrough } from './support/refresh-load.js'

t.test('the Sentinels hand the master over to its replica under refresh load (REDIS_WAIT_REPLICAS=1)', async (t) => {
  const group = await startSentinelGroup()
  t.teardown(() => group.stop())
  const { gateway, clients } = await busyGateway(t, group.env, 1, 'sentinel-handover')
  const before = await group.currentMaster()

  await refreshingThrough(
    t, gateway, clients,
    async () => {
      const sentinel = new Redis({ host: '127.0.0.1', port: group.sentinels[0]!.port, lazyConnect: true })
      await sentinel.connect()
      const started = Date.now()
      try {
        await sentinel.call('SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME)
      } finally {
        sentinel.disconnect()
      }
      const deadline = started + 30_000
      while ((await group.currentMaster()) === before) {
        if (Date.now() > deadline) throw new Error('the Sentinels did not switch the master')
        await sleep(20)
      }
      const switched = Date.now()
      // The Sentinels reconfigure the old master as a replica only once they next read its INFO
      // (every 10 s); until it has synced from the new one, no write can be acknowledged.
      const promoted = new Redis({ host: '127.0.0.1', port: (await group.currentMaster()).port, lazyConnect: true })
      await promoted.connect()
      try {
        while (!/slave0:.*state=online/.test(await promoted.info('replication'))) {
          if (Date.now() > deadline) throw new Error('the old master did not sync as a replica')
          await sleep(50)
        }
      } finally {
        promoted.disconnect()
      }
      const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
      return `switched the master in ${seconds(switched - started)}, the old one synced as its replica ${seconds(Date.now() - switched)} later;`
    },
    { unavailableAllowed: true },
  )
  t.not(await group.currentMaster(), before, 'the replica is the master now')
})
