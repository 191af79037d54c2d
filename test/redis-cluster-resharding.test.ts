// A Redis Cluster resharded while clients refresh: an operator moves every slot of one master
// to another (`redis-cli --cluster reshard`, as when a cluster is rebalanced or a master is
// emptied before it is removed). Each slot passes through MIGRATING/IMPORTING while its keys
// are moved one batch at a time; meanwhile a session's keys can be on either node (ASK), or
// split between them (TRYAGAIN), and a write that waits for its replica (REDIS_WAIT_REPLICAS)
// is refused until it is sent again. Every refresh must succeed: resharding is no outage.

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { sessionKeys } from '../verifier/session-keys.js'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'
import { startRedisCluster } from './support/redis-cluster.js'

const CLIENTS = 30

const cluster = await startRedisCluster()
t.teardown(() => cluster.stop())

for (const waitReplicas of [0, 1]) {
  t.test(`every slot of a master moves to another under refresh load (REDIS_WAIT_REPLICAS=${waitReplicas})`, async (t) => {
    const gateway = await startTestGateway({ redis: { ...cluster.env, REDIS_WAIT_REPLICAS: String(waitReplicas) } })
    t.teardown(() => gateway.close())
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const login = await loginWithGoogle(gateway, { sub: `reshard-${waitReplicas}-${i}`, name: `Reshard ${i}` })
        return { token: login.json().refreshToken as string }
      }),
    )
    const statuses = new Map<string, number>()
    const count = (what: string) => statuses.set(what, (statuses.get(what) ?? 0) + 1)
    const refused: string[] = []
    let running = true
    const load = clients.map(async (client) => {
      while (running) {
        const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: client.token } })
        count(String(answer.statusCode))
        if (answer.statusCode === 200) client.token = answer.json().refreshToken
        else {
          refused.push(`${answer.statusCode} ${answer.body}`)
          if (answer.statusCode === 401) return
          await sleep(50)
        }
        await sleep(5)
      }
    })

    // The master holding the most sessions gives all its slots to another.
    const masters = await cluster.masters()
    const homes = await Promise.all(clients.map((client) => cluster.masterOf(sessionKeys.index(parseRefreshToken(client.token)!.userId))))
    const source = masters.reduce((most, master) => (homes.filter((home) => home === master).length > homes.filter((home) => home === most).length ? master : most))
    const target = masters.find((master) => master !== source)!
    const idOf = async (node: typeof source) => {
      const admin = await cluster.connectTo(node)
      try {
        return (await admin.call('CLUSTER', 'MYID')) as string
      } finally {
        admin.disconnect()
      }
    }
    const started = performance.now()
    await promisify(execFile)('redis-cli', [
      '--cluster', 'reshard', `127.0.0.1:${source.port}`,
      '--cluster-from', await idOf(source), '--cluster-to', await idOf(target),
      '--cluster-slots', '16384', '--cluster-yes',
    ], { maxBuffer: 64 * 1024 * 1024 })
    const tookMs = performance.now() - started
    await sleep(1000)
    running = false
    await Promise.all(load)

    t.equal(homes.filter((home) => home === source).length > 0, true, 'sessions lived on the master that was emptied')
    t.equal((await cluster.masterOf(sessionKeys.index(parseRefreshToken(clients[0]!.token)!.userId))) === source, false, 'its slots are elsewhere now')
    for (const client of clients) {
      const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: client.token } })
      t.equal(answer.statusCode, 200, 'every session refreshes after the move')
    }
    t.same(refused, [], 'every refresh answered 200: a slot on the move is no outage (no 503), and logs nobody out (no 401)')
    t.comment(`moved every slot of one master in ${(tookMs / 1000).toFixed(1)} s under load from ${CLIENTS} clients; answers ${JSON.stringify(Object.fromEntries(statuses))}; refusals ${JSON.stringify([...new Set(refused)].slice(0, 5))}`)
  })
}
