// Revocation: with `{ redis }` a token is refused once its session key is gone from the
// gateway's Redis (the key layout of session-keys.ts), and a Redis that does not answer
// means 503 within the timeout, never 401 and never the token let through. With
// `{ introspection }` the gateway's RFC 7662 answer decides, cached for `cacheSeconds`.

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import t from 'tap'
import { sessionKeys } from '../session-keys.js'
import { call, startIssuer, startRedis, startService } from './support.js'

const issuer = await startIssuer()
t.teardown(() => issuer.close())

t.test('through Redis: a token passes while its session key exists, and is refused at once when it goes', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // As the README tells a resource server to connect: fail fast.
  const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 })
  t.teardown(() => client.disconnect())
  await new Promise((resolve) => client.once('ready', resolve))
  const service = await startService({ issuer: issuer.url, revocation: { redis: client, timeoutMs: 800 } })
  t.teardown(() => service.close())

  const session = sessionKeys.session('user-r', 'session-r')
  await client.hset(session, 'gen', '0')
  const token = await issuer.sign({ sub: 'user-r', sid: 'session-r' })
  t.equal((await call(service, '/orders', token)).statusCode, 200, 'the session lives')

  await client.del(session)
  const ended = await call(service, '/orders', token)
  t.equal(ended.statusCode, 401, 'logout takes effect at once')
  t.equal(ended.headers['www-authenticate'], 'Bearer error="invalid_token"')

  const machine = await issuer.sign({ sub: 'cart', client_id: 'cart', sid: undefined })
  t.equal((await call(service, '/orders', machine)).statusCode, 200, "a machine's token has no session to end")

  await client.hset(session, 'gen', '1')
  redis.pause()
  t.teardown(() => redis.resume())
  const started = Date.now()
  const stalled = await call(service, '/orders', token)
  const waited = Date.now() - started
  redis.resume()
  t.equal(stalled.statusCode, 503, 'a stalled Redis: 503, not 401 and not 200')
  t.equal(stalled.headers['retry-after'], '1')
  t.ok(waited < 2000, `answered within the timeout (${waited} ms)`)
})

t.test('through introspection: the answer decides, cached for cacheSeconds; a gateway that cannot answer means 503', async (t) => {
  let active = true
  let down = false
  let asked = 0
  const authorizations: string[] = []
  const gateway = createServer((request, response) => {
    asked++
    authorizations.push(request.headers.authorization ?? '')
    if (down) return void response.writeHead(503).end()
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active }))
  })
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve))
  t.teardown(() => gateway.close())
  const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/oauth/introspect`
  const service = await startService({ issuer: issuer.url, revocation: { introspection: { url, clientId: 'orders', clientSecret: 's3cret', cacheSeconds: 1 } } })
  t.teardown(() => service.close())

  const token = await issuer.sign()
  t.equal((await call(service, '/orders', token)).statusCode, 200)
  t.equal((await call(service, '/orders', token)).statusCode, 200)
  t.equal(asked, 1, 'the second request used the cached answer')
  t.equal(authorizations[0], `Basic ${Buffer.from('orders:s3cret').toString('base64')}`, 'the service authenticates as its client')

  active = false
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await call(service, '/orders', token)).statusCode, 401, 'an inactive token is refused once the cache expires')

  down = true
  const unreachable = await call(service, '/orders', await issuer.sign())
  t.equal(unreachable.statusCode, 503, 'a gateway that cannot answer: 503')
})
