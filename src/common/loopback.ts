import { connect, createServer, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** True for URLs on loopback: the only plain-http URLs production accepts. */
export function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for servers we start ourselves). */
export async function freeLoopbackPort(): Promise<number> {
  const { port, release } = await reserveLoopbackPort()
  await release()
  return port
}

/**
 * A port on 127.0.0.1 held open until `release()`: for a server whose port must be named
 * (in a URL, say) long before it listens. A port merely found free can be taken meanwhile,
 * by another server or as the local port of any outgoing connection.
 */
export async function reserveLoopbackPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const holder = createServer()
  holder.unref()
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject)
    holder.listen(0, '127.0.0.1', resolve)
  })
  const { port } = holder.address() as AddressInfo
  return { port, release: () => new Promise((resolve) => holder.close(() => resolve())) }
}

/** Resolves once something accepts connections on 127.0.0.1:port. */
export async function waitForLoopbackPort(port: number, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const open = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => (socket.destroy(), done(true)))
      socket.once('error', () => done(false))
    })
    if (open) return
    await sleep(25)
  }
  throw new Error(`${what} did not start listening on port ${port}`)
}
