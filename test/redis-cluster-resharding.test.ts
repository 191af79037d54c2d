// A Redis Cluster resharded while clients refresh, as an operator scales it in: every slot of
// one master moved to another (`redis-cli --cluster reshard`, as when a master is emptied
// before it is removed; scaling out is redis-cluster-rebalance.test.ts). While a slot moves, a
// session's keys can be on either node (ASK) or split between them (TRYAGAIN), and once it has
// moved the old master answers MOVED; a write that waits for its replica (REDIS_WAIT_REPLICAS)
// is refused without having run until it is sent again. Every refresh must succeed:
// resharding is no outage.

import t from 'tap'
import type { TestRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { busyGateway, homeOf, refreshingThrough } from './support/refresh-load.js'
import { reportWhatHoldsTheProcess } from './support/lingering.js'

reportWhatHoldsTheProcess(t)

t.test('every slot of one master moves to another under refresh load', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  for (const waitReplicas of [0, 1]) {
    await t.test(`REDIS_WAIT_REPLICAS=${waitReplicas}`, async (t) => {
      const { gateway, clients } = await busyGateway(t, cluster.env, waitReplicas, `reshard-${waitReplicas}`)
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
