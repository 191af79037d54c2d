// What fastify and Node answer on their own, before any route runs, carries the contract's
// `{ "error", "message" }` too, never fastify's `{ statusCode, error, message }` or an
// FST_ERR_ code: Node's HTTP parser refusing a request (431 for headers over 16 KB, a long
// URL included; 400 for a request that is not HTTP; 408 for one that does not arrive in
// time) and the router refusing a URL (414 for a path parameter over 100 characters).
// inject() never reaches Node's parser, so these go over a real socket to a listening gateway.

import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite', env: { REQUEST_TIMEOUT: '1' } })
t.teardown(() => gateway.close())
await gateway.app.listen({ port: 0, host: '127.0.0.1' })
const { port } = gateway.app.server.address() as AddressInfo

/** Sends raw bytes on a fresh connection and resolves with everything received until the gateway closes it (or `endAfterMs`). */
function raw(request: string | Buffer, endAfterMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let received = ''
    const timer = setTimeout(() => socket.destroy(), endAfterMs)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (received += chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after the answer arrived is the server closing a connection with unread input.
      if (received === '') reject(error)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(received)
    })
    socket.on('connect', () => socket.write(request))
  })
}

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

function parse(text: string): RawResponse {
  const split = text.indexOf('\r\n\r\n')
  const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n')
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
  return { status: Number(statusLine.split(' ')[1]), headers, body: text.slice(split + 4) }
}

function assertContract(t: Test, what: string, text: string, status: number, error: string): void {
  const response = parse(text)
  t.equal(response.status, status, `${what}: ${status} (got ${text.slice(0, 120).replace(/\r\n/g, ' | ')})`)
  t.match(response.headers['content-type'] ?? '', /^application\/json/, `${what}: JSON`)
  t.equal(Number(response.headers['content-length']), Buffer.byteLength(response.body), `${what}: the whole body arrived`)
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(response.body) as Record<string, unknown>
  } catch {
    t.fail(`${what}: the body is JSON: ${response.body}`)
  }
  t.same(Object.keys(body).sort(), ['error', 'message'], `${what}: exactly { error, message }`)
  t.equal(body.error, error, `${what}: error ${error}`)
  t.type(body.message, 'string', `${what}: a message`)
  t.notMatch(response.body, /FST_ERR|statusCode|\n\s+at |node_modules/, `${what}: no framework code, no stack`)
}

t.test('headers over 16 KB → 431 with { error, message }', async (t) => {
  const text = await raw(`GET /health/live HTTP/1.1\r\nHost: gateway\r\nX-Padding: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
  assertContract(t, 'a 17 KB header', text, 431, 'request_header_fields_too_large')
  const cookies = Array.from({ length: 200 }, (_, i) => `c${i}=${'v'.repeat(90)}`).join('; ')
  assertContract(t, '200 cookies', await raw(`GET /health/live HTTP/1.1\r\nHost: gateway\r\nCookie: ${cookies}\r\n\r\n`), 431, 'request_header_fields_too_large')
  // Node counts the request line with the headers: a URL over 16 KB is the same refusal.
  assertContract(t, 'a 20 KB URL', await raw(`GET /health/live?${'q'.repeat(20 * 1024)} HTTP/1.1\r\nHost: gateway\r\n\r\n`), 431, 'request_header_fields_too_large')
  const control = parse(await raw(`GET /health/live HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nX-Padding: ${'a'.repeat(15 * 1024)}\r\n\r\n`))
  t.equal(control.status, 200, 'the control: 15 KB of headers are served')
})

t.test('a request that is not HTTP → 400 invalid_request', async (t) => {
  const requests: [string, string][] = [
    ['a NUL in a header value', 'GET /health/live HTTP/1.1\r\nHost: gateway\r\nX-Bad: a\u0000b\r\n\r\n'],
    ['a space in a header name', 'GET /health/live HTTP/1.1\r\nHost: gateway\r\nBad Name: x\r\n\r\n'],
    ['an invalid method', 'G@T /health/live HTTP/1.1\r\nHost: gateway\r\n\r\n'],
    ['both Content-Length and chunked', 'POST /auth/token HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ]
  for (const [what, request] of requests) assertContract(t, what, await raw(request), 400, 'invalid_request')
})

t.test('an HTTP/1.1 request without Host → 400 with { error, message }; HTTP/1.0 needs none', async (t) => {
  const text = await raw('GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n')
  assertContract(t, 'no Host header', text, 400, 'invalid_request')
  t.match(JSON.parse(parse(text).body).message, /Host header/, 'the message names the missing header')
  const old = parse(await raw('GET /health/live HTTP/1.0\r\n\r\n'))
  t.equal(old.status, 200, 'an HTTP/1.0 request without Host is served')
})

t.test('a request whose headers do not arrive in REQUEST_TIMEOUT → 408 with { error, message }', async (t) => {
  const text = await raw('GET /health/live HTTP/1.1\r\nHost: gateway\r\n', 6000)
  assertContract(t, 'headers left unfinished', text, 408, 'request_timeout')
})

t.test('the router and the body parser over a socket: 414 for a path parameter over 100 characters, 400, 404', async (t) => {
  assertContract(t, 'a 101-character provider', await raw(`GET /auth/authorize/${'p'.repeat(101)}?returnTo=x HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n`), 414, 'uri_too_long')
  assertContract(t, 'broken %-encoding in a path parameter', await raw('GET /auth/callback/%E0%A4%A?state=x HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n'), 400, 'invalid_request')
  assertContract(t, 'an unknown route', await raw(`GET /${'x'.repeat(8000)} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n`), 404, 'not_found')
  const twice = '{"refreshToken":"a","refreshToken":"b"}'
  const post = `POST /auth/token HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${twice.length}\r\n\r\n${twice}`
  assertContract(t, 'a duplicated JSON key', await raw(post), 400, 'invalid_request')
})
