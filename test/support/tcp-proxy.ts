// A TCP proxy on loopback in front of a real server (PostgreSQL, Redis), for faults that
// the server itself cannot be made to show on cue: a server that stops answering, answers
// that arrive late and all at once, a connection cut right after a given request.

import net from 'node:net'

interface Pair {
  client: net.Socket
  upstream: net.Socket
  /** The server's bytes held back while `hold()` is in force. */
  held: Buffer[]
  upstreamClosed: boolean
}

export interface TcpProxy {
  port: number
  /** Nothing passes either way until `thaw()`: a server that stopped answering. */
  freeze(): void
  thaw(): void
  /** The server's bytes are held back ... */
  hold(): void
  /** ... and passed on in one write per connection (one chunk for the client to parse). */
  release(): void
  /** The next connection whose client sends bytes containing `marker` is cut before they reach the server. */
  cutWhenClientSends(marker: string): void
  close(): Promise<void>
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let frozen = false
  let holding = false
  let cutMarker: Buffer | undefined
  const pairs = new Set<Pair>()

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    const pair: Pair = { client, upstream, held: [], upstreamClosed: false }
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', () => {})
    upstream.on('close', () => {
      pair.upstreamClosed = true
      if (!holding) end()
    })
    client.on('data', (chunk: Buffer) => {
      if (cutMarker && chunk.includes(cutMarker)) {
        cutMarker = undefined
        end()
        return
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => (holding ? pair.held.push(chunk) : client.write(chunk)))
    if (frozen) pause(pair)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

  const pause = ({ client, upstream }: Pair) => {
    client.pause()
    upstream.pause()
  }
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      frozen = true
      for (const pair of pairs) pause(pair)
    },
    thaw() {
      frozen = false
      for (const { client, upstream } of pairs) {
        client.resume()
        upstream.resume()
      }
    },
    hold() {
      holding = true
    },
    release() {
      holding = false
      for (const pair of pairs) {
        if (pair.held.length > 0) pair.client.write(Buffer.concat(pair.held))
        pair.held = []
        if (pair.upstreamClosed) pair.client.end()
      }
    },
    cutWhenClientSends(marker) {
      cutMarker = Buffer.from(marker)
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** `url` with its port replaced by the proxy's. */
export function throughProxy(url: string, proxy: TcpProxy): string {
  const proxied = new URL(url)
  proxied.port = String(proxy.port)
  return proxied.toString()
}
