// A Sentinel group's planned switch under refresh load (SENTINEL FAILOVER, as in a rolling
// upgrade). Unlike a Cluster's handover, the Sentinels promote the replica without pausing the
// master, and reconfigure the old master as a replica (closing its clients) only when they next
// read its INFO, up to 10 s later: the gateway writes to it until then, and those writes are
// erased when it resyncs. With REDIS_WAIT_REPLICAS=1 and one replica they are not acknowledged
// (503): nobody is logged out (no 401), and every session refreshes afterwards. Two replicas:
// redis-sentinel-handover-two-replicas.test.ts.

import t from 'tap'
import { startSentinelGroup, switchMaster } from './support/redis-sentinel.js'
import { busyGateway, refreshingThrough } from './support/refresh-load.js'

t.test('one replica: the switch logs nobody out, and writes wait for the old master to sync (REDIS_WAIT_REPLICAS=1)', async (t) => {
  const group = await startSentinelGroup()
  t.teardown(() => group.stop())
  const { gateway, clients } = await busyGateway(t, group.env, 1, 'sentinel-handover')
  await refreshingThrough(t, gateway, clients, () => switchMaster(group), { unavailableAllowed: true })
})
