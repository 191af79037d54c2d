// A Redis that lost its data (restarted without persistence, an empty server promoted by
// Sentinel, a Cluster master back empty before its replica took over) has logged users out:
// the gateway says so in its log and in a metric, once. A reconnect to the same data, or a
// Cluster master failing over to a replica that has the data, says nothing.

import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyServerOptions } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { freeLoopbackPort } from '../src/common/loopback.js'
import { LOST_DATA_MESSAGE } from '../src/storage/lost-data.js'
import { sessionKeys } from '../verifier/session-keys.js'
import { loginWithGoogle, redisReconnected, startTestGateway, type GatewayUnderTest } from './support/gateway.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { until } from './support/until.js'

/** A gateway started by `start`, and what it reports of lost data: its log's errors and its counter. */
async function watched<G extends GatewayUnderTest>(start: (logger: FastifyServerOptions['logger'], env: Record<string, string>) => Promise<G>) {
  const metricsPort = await freeLoopbackPort()
  const logged: { level: number; msg: string }[] = []
  const gateway = await start({ level: 'warn', stream: { write: (line: string) => logged.push(JSON.parse(line)) } }, { METRICS_PORT: String(metricsPort) })
  t.teardown(() => gateway.close())
  return {
    gateway,
    reports: () => logged.filter((line) => line.msg === LOST_DATA_MESSAGE),
    async lossesCounted(): Promise<number> {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
      return Number(/^gateway_redis_data_lost_total (\S+)$/m.exec(text)?.[1])
    },
    /** A refresh as a client makes it: a 503 (Redis not back yet) is tried again. */
    async refresh(refreshToken: string) {
      for (;;) {
        const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
        if (answer.statusCode !== 503) return answer
        await sleep(100)
      }
    },
  }
}

t.test('one server', async (t) => {
  const { gateway, reports, lossesCounted, refresh } = await watched((logger, env) => startTestGateway({ database: 'pglite', env, logger }))
  const redis = gateway.testRedis
  /** Cuts the gateway's connections, as a dropped link does; it reconnects by itself. */
  async function dropConnections(): Promise<void> {
    const reconnected = once(gateway.redis, 'ready')
    const admin = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true })
    await admin.connect()
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    admin.disconnect()
    await reconnected
  }

  await t.test('a reconnect to the same data says nothing', async (t) => {
    await dropConnections()
    // The check runs after the reconnect; give it the time a report would take.
    await sleep(300)
    t.same(reports(), [], 'nothing logged')
    t.equal(await lossesCounted(), 0, 'nothing counted')
  })

  await t.test('a Redis restarted without its data: one error in the log, one count, and the sessions are gone', async (t) => {
    const login = await loginWithGoogle(gateway, { sub: 'lost-data', name: 'Lost Data' })
    t.equal(login.statusCode, 200)
    await redis.stop()
    await redis.start()
    await redisReconnected(gateway)
    await until('the loss reported', () => reports().length > 0)
    t.equal(reports()[0]!.level, 50, 'logged as an error')
    t.equal(await lossesCounted(), 1, 'gateway_redis_data_lost_total counts it')
    t.equal((await refresh(login.json().refreshToken)).statusCode, 401, 'what users meet: their sessions are gone')

    await dropConnections()
    await sleep(300)
    t.equal(reports().length, 1, 'reported once: the next reconnect finds the new marker')
    t.equal(await lossesCounted(), 1, 'counted once')
  })
})

t.test('a Cluster', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.stop())
  const { gateway, reports, lossesCounted, refresh } = await watched((logger, env) => startTestGateway({ database: 'pglite', redis: cluster.env, env, logger }))
  /** A user logged in, and the master that holds their sessions. */
  async function loggedIn(sub: string) {
    const login = await loginWithGoogle(gateway, { sub, name: sub })
    t.equal(login.statusCode, 200, `${sub} logged in`)
    const master = await cluster.masterOf(sessionKeys.index(login.json().user.id))
    return { refreshToken: login.json().refreshToken as string, master, replica: (await cluster.replicasOf(master))[0]! }
  }

  await t.test("a master failing over to its replica keeps the data: nothing said", async (t) => {
    const user = await loggedIn('cluster-failover')
    await user.master.crash()
    await until('the replica took over', async () => (await cluster.masters()).includes(user.replica))
    await user.master.start()
    const refreshed = await refresh(user.refreshToken)
    t.equal(refreshed.statusCode, 200, "the user's session went over with the replica")
    // Every reconnect has had its check by now: the refresh needed the new master's connection.
    await sleep(500)
    t.same(reports(), [], 'nothing logged')
    t.equal(await lossesCounted(), 0, 'nothing counted')
  })

  await t.test('a master restarted empty before its replica took over: one error, one count, its sessions gone', async (t) => {
    const user = await loggedIn('cluster-lost-data')
    // The replica must not take over in the moment the master is down: it would keep the data.
    const replica = await cluster.connectTo(user.replica)
    await replica.config('SET', 'cluster-replica-no-failover', 'yes')
    t.teardown(async () => {
      await replica.config('SET', 'cluster-replica-no-failover', 'no')
      replica.disconnect()
    })
    await user.master.crash()
    await user.master.start()
    t.equal((await refresh(user.refreshToken)).statusCode, 401, 'what users meet: their sessions are gone')
    await until('the loss reported', () => reports().length > 0)
    t.equal(reports().length, 1, 'one report')
    t.equal(reports()[0]!.level, 50, 'logged as an error')
    t.equal(await lossesCounted(), 1, 'gateway_redis_data_lost_total counts it')
  })
})
