// A Redis Cluster resharded while clients refresh, as an operator scales it: every slot of one
// master moved to another (`redis-cli --cluster reshard`, as when a master is emptied before it
// is removed), and a new master with its replica joining and taking its share (`add-node`, then
// `rebalance --cluster-use-empty-masters`), a node the gateway never heard of at start-up.
// While a slot moves, a session's keys can be on either node (ASK) or split between them
// (TRYAGAIN), and once it has moved the old master answers MOVED; a write that waits for its
// replica (REDIS_WAIT_REPLICAS) is refused without having run until it is sent again. Every
// refresh must succeed: resharding is no outage.

import t from 'tap'
import type { TestRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { busyGateway, homeOf, refreshingThrough } from './support/cluster-maintenance.js'

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
