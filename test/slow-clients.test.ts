// Slow clients cannot hold the service: a request whose headers or body trickle in is closed
// once REQUEST_TIMEOUT has passed, and one address's connections beyond MAX_CONNECTIONS_PER_IP
// are closed as soon as they are accepted, so other clients keep being answered at once.
// Over real TCP on loopback: the test holds both ends of each connection.

import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startTestGateway } from './support/gateway.js'

async function listening(env: Record<string, string>) {
  const gateway = await startTestGateway({ env })
  await gateway.app.listen({ port: 0, host: '127.0.0.1' })
  return { gateway, port: (gateway.app.server.address() as AddressInfo).port }
}

interface SlowClient {
  /** Resolves with the milliseconds from connect to close, or Infinity if it was still open at `giveUpMs`. */
  closedAfter: Promise<number>
  /** What the gateway answered, if anything. */
  received(): string
}

/** Connects, sends `first`, then one `drip()` every `everyMs` until the gateway closes the connection. */
function trickle(port: number, first: string, drip: (n: number) => string | undefined, giveUpMs: number, everyMs = 1000): SlowClient {
  const socket = connect({ host: '127.0.0.1', port })
  let received = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk))
  socket.on('error', () => {})
  const started = performance.now()
  let drips = 0
  socket.on('connect', () => first && socket.write(first))
  const timer = setInterval(() => {
    const next = drip(++drips)
    if (next !== undefined && socket.writable) socket.write(next)
  }, everyMs)
  const closedAfter = new Promise<number>((resolve) => {
    const giveUp = setTimeout(() => resolve(Infinity), giveUpMs)
    socket.on('close', () => {
      clearTimeout(giveUp)
      resolve(performance.now() - started)
    })
  }).finally(() => {
    clearInterval(timer)
    socket.destroy()
  })
  return { closedAfter, received: () => received }
}

t.test('a request trickling in is closed once REQUEST_TIMEOUT has passed', async (t) => {
  const { gateway, port } = await listening({ REQUEST_TIMEOUT: '2' })
  t.teardown(() => gateway.close())
  const timeoutMs = 2000
  const giveUpMs = timeoutMs + 6000

  const tokenHeaders = 'POST /auth/token HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n'
  const slowBody = trickle(port, tokenHeaders + '{', () => ' ', giveUpMs)
  const slowHeaders = trickle(port, 'GET /health/live HTTP/1.1\r\nHost: gateway\r\n', (n) => `X-Slow-${n}: 1\r\n`, giveUpMs)
  const silent = trickle(port, '', () => undefined, giveUpMs)
  // The same request with its body in 5 pieces over half a second, well inside the timeout
  // (a busy machine delays the pieces): it is answered.
  const body = JSON.stringify({ refreshToken: 'not-a-token' }).padEnd(100, ' ')
  const withinTimeout = trickle(port, tokenHeaders, (n) => (n <= 5 ? body.slice((n - 1) * 20, n * 20) : undefined), giveUpMs, 100)

  for (const [name, client] of [['a body sent one byte a second', slowBody], ['headers sent one line a second', slowHeaders], ['a connection that sends nothing', silent]] as const) {
    const ms = await client.closedAfter
    t.comment(`${name}: closed after ${Math.round(ms)} ms`)
    t.ok(ms >= timeoutMs - 250, `${name} is given REQUEST_TIMEOUT (${Math.round(ms)} ms)`)
    t.ok(ms < timeoutMs + 2000, `${name} is closed within REQUEST_TIMEOUT + 2 s (${Math.round(ms)} ms)`)
  }
  await withinTimeout.closedAfter
  t.match(withinTimeout.received(), /^HTTP\/1\.1 401 /, 'a slow body that completes in time is answered')
})

t.test('one address holding thousands of connections cannot crowd out other clients', async (t) => {
  const perAddress = 100
  // The request timeout is long here so that only the per-address cap can close anything.
  const { gateway, port } = await listening({ REQUEST_TIMEOUT: '60', MAX_CONNECTIONS_PER_IP: String(perAddress) })
  const held: Socket[] = []
  t.teardown(async () => {
    for (const socket of held) socket.destroy()
    await gateway.close()
  })

  // Each connection is two descriptors in this process (client and server end); keep a reserve
  // for the gateway's stores and tap.
  const limit = descriptorLimit()
  const attackers = Math.min(2000, Math.floor((limit - 1024) / 2))
  if (attackers < 2000) t.comment(`open-file limit ${limit}: ${attackers} connections instead of 2,000`)
  t.ok(attackers > 5 * perAddress, `${attackers} connections, well beyond the cap of ${perAddress}`)

  let closed = 0
  let lastClosedAt = Number.POSITIVE_INFINITY
  const openOne = () =>
    new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' })
      held.push(socket)
      socket.on('error', () => {})
      socket.on('connect', () => {
        socket.write('POST /auth/token HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100\r\n\r\n{')
        resolve()
      })
      socket.on('close', () => {
        closed++
        lastClosedAt = performance.now()
        resolve()
      })
    })
  // Another client keeps asking while the flood arrives and while it is held.
  const during: number[] = []
  const statuses: number[] = []
  let flooding = true
  const probing = (async () => {
    while (flooding) {
      const probe = await get(port, '/health/live')
      statuses.push(probe.status)
      during.push(probe.ms)
      await sleep(50)
    }
  })()
  // In batches, so that the listen backlog never overflows (a dropped SYN is retried after 1 s).
  const floodStarted = performance.now()
  for (let opened = 0; opened < attackers; opened += 200) {
    await Promise.all(Array.from({ length: Math.min(200, attackers - opened) }, openOne))
  }
  const floodOpened = performance.now()
  flooding = false
  await probing
  for (const deadline = floodOpened + 3000; closed < attackers - perAddress && performance.now() < deadline; ) await sleep(20)
  await sleep(200) // any closing beyond the cap would show now
  t.comment(`${attackers} connections opened in ${Math.round(floodOpened - floodStarted)} ms; ${closed} closed, the last ${Math.round(lastClosedAt - floodStarted)} ms after the first was opened`)
  t.equal(attackers - closed, perAddress, 'exactly MAX_CONNECTIONS_PER_IP stay open')
  t.ok(lastClosedAt - floodOpened < 3000, 'the rest are closed at once, not after REQUEST_TIMEOUT')

  const heldLatencies: number[] = []
  for (let i = 0; i < 15; i++) {
    const probe = await get(port, '/health/live')
    statuses.push(probe.status)
    heldLatencies.push(probe.ms)
  }
  t.ok(statuses.every((status) => status === 200), `every probe from 127.0.0.1 is answered 200 (${statuses.length} probes)`)
  for (const [phase, latencies] of [['while the flood arrives', during], ['while it is held', heldLatencies]] as const) {
    latencies.sort((a, b) => a - b)
    const median = latencies[Math.floor(latencies.length / 2)]!
    t.comment(`/health/live ${phase}: ${latencies.length} probes, median ${median.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`)
    t.ok(median < 100, `another client is answered in under 100 ms ${phase} (median ${median.toFixed(1)} ms)`)
  }

  t.ok(gateway.app.server.maxConnections < limit, `all connections together stay below the open-file limit (${gateway.app.server.maxConnections} < ${limit})`)
  t.ok(limit - gateway.app.server.maxConnections >= Math.min(128, limit / 2), 'leaving descriptors for Redis, the database and providers')

  // Once the address lets go, its connections are counted down and it is served again.
  for (const socket of held.splice(0)) socket.destroy()
  let again = await get(port, '/health/live', '127.0.0.2').catch(() => undefined)
  for (const deadline = performance.now() + 2000; again?.status !== 200 && performance.now() < deadline; ) {
    await sleep(50)
    again = await get(port, '/health/live', '127.0.0.2').catch(() => undefined)
  }
  t.equal(again?.status, 200, 'the address is served again after closing its connections')
})

/** One request on a fresh connection (a new client), timed from connect to the end of the answer. */
function get(port: number, path: string, localAddress = '127.0.0.1') {
  return new Promise<{ status: number; ms: number }>((resolve, reject) => {
    const started = performance.now()
    request({ host: '127.0.0.1', port, path, localAddress, agent: false }, (response) => {
      response.resume().on('end', () => resolve({ status: response.statusCode!, ms: performance.now() - started }))
    })
      .on('error', reject)
      .end()
  })
}

/** This process's soft limit on open files. */
function descriptorLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\d+)/m)
  return line ? Number(line[1]) : 1024
}
