// A Redis that lost its data (restarted without persistence, or an empty server promoted by
// Sentinel) has logged every user out: the gateway says so in its log and in a metric, once,
// when it reconnects. A reconnect to the same data says nothing.

import { once } from 'node:events'
import { Redis } from 'ioredis'
import t from 'tap'
import { freeLoopbackPort } from '../src/common/loopback.js'
import { LOST_DATA_MESSAGE } from '../src/storage/lost-data.js'
import { loginWithGoogle, redisReconnected, startTestGateway } from './support/gateway.js'
import { until } from './support/until.js'

const metricsPort = await freeLoopbackPort()
const logged: { level: number; msg: string }[] = []
const gateway = await startTestGateway({
  database: 'pglite',
  env: { METRICS_PORT: String(metricsPort) },
  logger: { level: 'warn', stream: { write: (line: string) => logged.push(JSON.parse(line)) } },
})
t.teardown(() => gateway.close())
const redis = gateway.testRedis

const reports = () => logged.filter((line) => line.msg === LOST_DATA_MESSAGE)
async function lossesCounted(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  return Number(/^gateway_redis_data_lost_total (\S+)$/m.exec(text)?.[1])
}
/** Cuts the gateway's connections, as a dropped link does; it reconnects by itself. */
async function dropConnections(): Promise<void> {
  const reconnected = once(gateway.redis, 'ready')
  const admin = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true })
  await admin.connect()
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  admin.disconnect()
  await reconnected
}
const refresh = (refreshToken: string) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

t.test('a reconnect to the same data says nothing', async (t) => {
  await dropConnections()
  // The check runs after the reconnect; give it the time a report would take.
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(reports(), [], 'nothing logged')
  t.equal(await lossesCounted(), 0, 'nothing counted')
})

t.test('a Redis restarted without its data: one error in the log, one count, and the sessions are gone', async (t) => {
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
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(reports().length, 1, 'reported once: the next reconnect finds the new marker')
  t.equal(await lossesCounted(), 1, 'counted once')
})
