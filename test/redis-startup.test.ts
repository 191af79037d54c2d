// Start-up against a Redis that accepts connections and never answers (a hung server, a
// firewall that swallows packets past the handshake, a wrong port on a busy proxy): the gateway
// does not wait for ever, neither on the connection nor on asking a seed node or a Sentinel why
// it failed; it stops with the reason.

import { createServer, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { connectRedis, type RedisTarget } from '../src/storage/redis.js'
import { startupOutcome } from './support/shared-redis.js'

/** A TCP server that accepts every connection and never writes a byte. */
async function silentServer(t: Test): Promise<{ host: string; port: number }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return { host: '127.0.0.1', port: (server.address() as { port: number }).port }
}

const failure = (target: RedisTarget) => startupOutcome(connectRedis(target, { warn() {} }))

t.test('one Redis, a Cluster and a Sentinel group that never answer: start-up fails and says so', async (t) => {
  const [one, seed, sentinel] = await Promise.all([silentServer(t), silentServer(t), silentServer(t)])
  const [url, cluster, sentinels] = await Promise.all([
    failure({ url: `redis://${one.host}:${one.port}` }),
    failure({ clusterNodes: [seed] }),
    failure({ sentinels: [sentinel], sentinelName: 'gateway' }),
  ])
  t.equal(url, 'Redis was not ready within 10 s of start-up: connected, but Redis answered nothing (a stalled server, or not Redis on that port)')
  t.match(cluster, /^None of startup nodes is available \(last connection error: timeout\); Redis did not answer in time: a stalled server, or not Redis on that port$/)
  t.match(sentinels, /^Redis was not ready within 10 s of start-up \(last connection error: .*Command timed out\); Redis did not answer in time/)
})
