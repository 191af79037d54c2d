// A Redis Cluster's rolling upgrade under refresh load: every master hands over to its replica
// (CLUSTER FAILOVER). The gateway must find the promoted replica's connection usable as soon as
// it is named (commands wait for it to open rather than being refused), and a handover may cut
// a rotation's answer off (its connection closed, its WAIT unblocked): the rotation is run
// again, within its grace. A resource server checking revocation on the same Cluster keeps
// answering too. Every refresh must succeed: a planned handover is no outage.

import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import t from 'tap'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { loginWithGoogle, startTestGateway, type GatewayUnderTest } from './support/gateway.js'
import type { TestRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { busyGateway, homeOf, onNode, refreshingThrough } from './support/refresh-load.js'
import { startResourceServer } from './verifier/fixtures/resource-server.js'
import { reportWhatHoldsTheProcess } from './support/lingering.js'

reportWhatHoldsTheProcess(t)

t.test('every master hands over to its replica under refresh load (a rolling upgrade)', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  // The resource servers' read-only user of the gateway's keys, as the verifier's README has it
  // (ACLs are each node's own).
  for (const node of cluster.nodes) {
    await onNode(cluster, node, (admin) => admin.call('ACL', 'SETUSER', 'verifier', 'on', '>s3cret', '~gw:*', '+exists', '+cluster|slots', '+cluster|info'))
  }
  for (const waitReplicas of [0, 1]) {
    await t.test(`REDIS_WAIT_REPLICAS=${waitReplicas}`, async (t) => {
      const { gateway, clients } = await busyGateway(t, cluster.env, waitReplicas, `handover-${waitReplicas}`)
      // A resource server with its own client of the Cluster: ioredis' defaults, as the verifier's README has it.
      const sessionRedis = new Cluster(cluster.seeds, { lazyConnect: true, redisOptions: { username: 'verifier', password: 's3cret', enableReadyCheck: false } })
      sessionRedis.on('error', () => {})
      await sessionRedis.connect()
      t.teardown(() => sessionRedis.disconnect())
      const jwks = await gateway.app.listen({ host: '127.0.0.1', port: 0 })
      const orders = await startResourceServer({
        issuer: gateway.config.publicUrl,
        audience: gateway.config.tokenAudience,
        jwksUri: `${jwks}/.well-known/jwks.json`,
        revocation: { redis: sessionRedis },
      })
      t.teardown(() => orders.close())
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
      }, { resourceServer: orders })
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
