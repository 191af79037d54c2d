// A Redis Cluster scaled out while clients refresh: a new master with its replica joins and
// takes its share of the slots (`add-node`, then `rebalance --cluster-use-empty-masters`), a
// node the gateway never heard of at start-up. The sessions that move with their slots keep
// refreshing: a write that waits for its replica (REDIS_WAIT_REPLICAS), refused without having
// run while its slot moves, is sent again (see redis-cluster-resharding.test.ts).

import t from 'tap'
import { startRedisCluster } from './support/redis-cluster.js'
import { busyGateway, homeOf, refreshingThrough } from './support/refresh-load.js'
import { reportWhatHoldsTheProcess } from './support/lingering.js'

reportWhatHoldsTheProcess(t)

t.test('a new master joins and takes its share of the slots under refresh load (REDIS_WAIT_REPLICAS=1)', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  const { gateway, clients } = await busyGateway(t, cluster.env, 1, 'rebalance')
  const newcomer = await cluster.addMaster()

  await refreshingThrough(t, gateway, clients, async () => {
    await cluster.redisCli('rebalance', '--cluster-use-empty-masters')
    return 'rebalanced onto a new master'
  })
  const homes = await Promise.all(clients.map((client) => homeOf(cluster, client.token)))
  t.ok(homes.includes(newcomer), `${homes.filter((home) => home === newcomer).length} of the sessions live on the new master now`)
})
