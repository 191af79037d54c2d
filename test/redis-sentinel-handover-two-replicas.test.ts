// A Sentinel group with two replicas switched under refresh load (SENTINEL FAILOVER). Until the
// Sentinels move it, the replica that was not promoted still acknowledges the old master's
// writes, which are erased when it follows the new master: with REDIS_WAIT_REPLICAS=1 a run
// logged all 30 users out. REDIS_WAIT_REPLICAS must be every replica (2): then the old master's
// writes are not acknowledged (503), nobody is logged out, and every session refreshes afterwards.

import t from 'tap'
import { startSentinelGroup, switchMaster } from './support/redis-sentinel.js'
import { busyGateway, refreshingThrough } from './support/refresh-load.js'

t.test('two replicas: the switch logs nobody out with REDIS_WAIT_REPLICAS=2, every replica', async (t) => {
  const group = await startSentinelGroup({ replicas: 2 })
  t.teardown(() => group.stop())
  const { gateway, clients } = await busyGateway(t, group.env, 2, 'sentinel-two-replicas')
  await refreshingThrough(t, gateway, clients, () => switchMaster(group), { unavailableAllowed: true })
})
