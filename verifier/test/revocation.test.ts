// Revocation: with `{ redis }` a token is refused once its session key is gone from the
// gateway's Redis (the layout of session-keys.ts: the gateway keeps the key exactly while
// the session lives, with the session's TTL), and a Redis that is down or stalled means 503
// within the timeout, never 401 and never the token let through; the read-only ACL user the
// README recommends is enough. With `{ introspection }` the gateway's RFC 7662 answer
// decides, cached for `cacheSeconds`.

import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, type RedisOptions } from 'ioredis'
import t from 'tap'
import { sessionKeys } from '../session-keys.js'
import { call, close, listen, startIssuer, startRedis, startService, within, type TestRedis } from './support.js'

const issuer = await startIssuer()
t.teardown(() => issuer.close())

/** What the README tells a resource server: fail fast, never queue; no INFO ready check (a read-only ACL user may not run it). */
const README_OPTIONS: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, enableReadyCheck: false }

async function connect(redis: TestRedis, options: RedisOptions): Promise<Redis> {
  const client = new Redis(redis.url, { lazyConnect: true, ...options })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** A session as the gateway writes it: a hash under sessionKeys.session(sub, sid) that lives as long as the session. */
async function startSession(admin: Redis, sub: string, sid: string, ttlMs = 600_000): Promise<string> {
  const key = sessionKeys.session(sub, sid)
  await admin.multi().hset(key, { gen: '0', created: String(Date.now()) }).pexpire(key, ttlMs).zadd(sessionKeys.index(sub), Date.now(), sid).exec()
  return key
}

t.test('the session key layout is the gateway\'s', async (t) => {
  t.equal(sessionKeys.session('user-1', 'session-1'), 'gw:{user-1}:s:session-1', 'what the README and the ACL pattern ~gw:* name')
})

t.test('through Redis: a token passes while its session lives, and is refused at once when it ends', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = await connect(redis, {})
  t.teardown(() => admin.disconnect())
  const client = await connect(redis, README_OPTIONS)
  t.teardown(() => client.disconnect())
  const service = await startService({ issuer: issuer.url, revocation: { redis: client, timeoutMs: 800 } })
  t.teardown(() => service.close())

  const session = await startSession(admin, 'user-r', 'session-r')
  await startSession(admin, 'user-r', 'session-other')
  const token = await issuer.sign({ sub: 'user-r', sid: 'session-r' })
  const other = await issuer.sign({ sub: 'user-r', sid: 'session-other' })
  t.equal((await call(service, '/orders', token)).statusCode, 200, 'the session lives')

  await admin.del(session)
  const ended = await call(service, '/orders', token)
  t.equal(ended.statusCode, 401, 'logout takes effect at once')
  t.equal(ended.headers['www-authenticate'], 'Bearer error="invalid_token"')
  t.equal(ended.json().error, 'invalid_token')
  t.equal((await call(service, '/orders', other)).statusCode, 200, "the user's other session is untouched")
  t.equal((await call(service, '/orders', await issuer.sign({ sub: 'user-x', sid: 'session-r' }))).statusCode, 401, 'a session id under another user is not that session')

  await startSession(admin, 'user-t', 'session-t', 300)
  const short = await issuer.sign({ sub: 'user-t', sid: 'session-t' })
  t.equal((await call(service, '/me', short)).statusCode, 200)
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal((await call(service, '/me', short)).statusCode, 401, 'a session that reached its end (the key expired) is over')

  const machine = await issuer.sign({ sub: 'cart', client_id: 'cart', sid: undefined })
  t.equal((await call(service, '/orders', machine)).statusCode, 200, "a machine's token has no session to end")
})

t.test('a Redis that is stalled or down: 503 within the timeout, never 401, never the token let through', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = await connect(redis, {})
  t.teardown(() => admin.disconnect())
  await startSession(admin, 'user-d', 'session-d')
  const token = await issuer.sign({ sub: 'user-d', sid: 'session-d' })

  // As the README says, and as a careless service might: a client that queues forever.
  const failFast = await connect(redis, README_OPTIONS)
  const queueing = await connect(redis, {})
  t.teardown(() => (failFast.disconnect(), queueing.disconnect()))
  const services = {
    'a fail-fast client': await startService({ issuer: issuer.url, revocation: { redis: failFast, timeoutMs: 800 } }),
    'a client that queues (only timeoutMs bounds the wait)': await startService({ issuer: issuer.url, revocation: { redis: queueing, timeoutMs: 300 } }),
  }
  t.teardown(() => Promise.all(Object.values(services).map((service) => service.close())))
  for (const [what, service] of Object.entries(services)) t.equal((await call(service, '/orders', token)).statusCode, 200, `${what}: the session lives`)

  redis.pause()
  t.teardown(() => redis.resume())
  for (const [what, service] of Object.entries(services)) {
    const started = Date.now()
    const stalled = await within(5000, call(service, '/orders', token))
    const waited = Date.now() - started
    t.equal(stalled === 'no answer' ? stalled : stalled.statusCode, 503, `${what}, Redis stalled: 503`)
    if (stalled !== 'no answer') t.equal(stalled.headers['retry-after'], '1')
    t.ok(waited < 2000, `${what}: answered within the timeout (${waited} ms)`)
  }
  redis.resume()

  await redis.stop()
  const service = services['a fail-fast client']
  const started = Date.now()
  const down = await within(5000, call(service, '/orders', token))
  const waited = Date.now() - started
  t.equal(down === 'no answer' ? down : down.statusCode, 503, 'Redis down: 503')
  t.ok(waited < 1000, `at once (${waited} ms)`)
  const machine = await issuer.sign({ sub: 'cart', client_id: 'cart', sid: undefined })
  t.equal((await call(service, '/orders', machine)).statusCode, 200, "a machine's token does not need Redis")
})

t.test('a client that queues, while Redis is down: refused at once, and no check is queued for its return', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = await connect(redis, {})
  // ioredis' defaults: an offline queue, and reconnection forever.
  const queueing = await connect(redis, {})
  t.teardown(() => (admin.disconnect(), queueing.disconnect()))
  const service = await startService({ issuer: issuer.url, revocation: { redis: queueing, timeoutMs: 300 } })
  t.teardown(() => service.close())
  await startSession(admin, 'user-q', 'session-q')
  const token = await issuer.sign({ sub: 'user-q', sid: 'session-q' })
  t.equal((await call(service, '/orders', token)).statusCode, 200, 'the session lives')

  await redis.stop()
  while (queueing.status === 'ready') await sleep(10)
  for (let i = 0; i < 5; i++) t.equal((await call(service, '/orders', token)).statusCode, 503, `Redis down, check ${i + 1}: 503`)

  await redis.start()
  while ((queueing.status as string) !== 'ready') await sleep(20)
  // Sent after anything the client had queued, on the same connection.
  await queueing.ping()
  t.notMatch(await admin.info('commandstats'), /cmdstat_exists:/, "no EXISTS reached Redis on its return: nothing was queued")
  await startSession(admin, 'user-q', 'session-q')
  t.equal((await call(service, '/orders', token)).statusCode, 200, 'checked again once Redis is back')
})

t.test('the service busy for longer than the timeout while Redis answered at once: the token passes', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = await connect(redis, {})
  const client = await connect(redis, README_OPTIONS)
  t.teardown(() => (admin.disconnect(), client.disconnect()))
  const service = await startService({ issuer: issuer.url, revocation: { redis: client, timeoutMs: 300 } })
  t.teardown(() => service.close())
  await startSession(admin, 'user-b', 'session-b')
  const token = await issuer.sign({ sub: 'user-b', sid: 'session-b' })

  let answered = false
  const called = call(service, '/orders', token).finally(() => (answered = true))
  // The service computes for longer than timeoutMs between two turns of its event loop, so
  // the EXISTS is answered while it is busy: that answer is not late.
  while (!answered) {
    await new Promise((resolve) => setImmediate(resolve))
    const busyUntil = Date.now() + 500
    while (Date.now() < busyUntil);
  }
  t.equal((await called).statusCode, 200, 'not 503: Redis answered in time')
})

t.test("the README's read-only ACL user is enough, and cannot write", async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = await connect(redis, {})
  t.teardown(() => admin.disconnect())
  await admin.call('ACL', 'SETUSER', 'verifier', 'on', '>s3cret', '~gw:*', '+exists')
  const warnings: unknown[] = []
  const warn = console.warn
  console.warn = (...args: unknown[]) => void warnings.push(args)
  t.teardown(() => void (console.warn = warn))
  const client = await connect(redis, { ...README_OPTIONS, username: 'verifier', password: 's3cret' })
  t.teardown(() => client.disconnect())
  const service = await startService({ issuer: issuer.url, revocation: { redis: client } })
  t.teardown(() => service.close())

  const session = await startSession(admin, 'user-a', 'session-a')
  const token = await issuer.sign({ sub: 'user-a', sid: 'session-a' })
  t.equal((await call(service, '/orders', token)).statusCode, 200)
  await admin.del(session)
  t.equal((await call(service, '/orders', token)).statusCode, 401)
  await t.rejects(client.hset(session, 'gen', '0'), /NOPERM/, 'the verifier\'s user cannot make a session')
  t.same(warnings, [], 'the client connected without complaints')
})

t.test('through introspection: the answer decides, cached for cacheSeconds; a gateway that cannot answer means 503', async (t) => {
  let active = true
  let down = false
  let asked = 0
  const requests: { authorization?: string; body: string }[] = []
  const gateway = createServer((request, response) => {
    asked++
    let body = ''
    request.on('data', (chunk) => (body += chunk))
    request.on('end', () => {
      requests.push({ authorization: request.headers.authorization, body })
      if (down) return void response.writeHead(503).end()
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active }))
    })
  })
  const url = `${await listen(gateway)}/oauth/introspect`
  t.teardown(() => close(gateway))
  const service = await startService({ issuer: issuer.url, revocation: { introspection: { url, clientId: 'orders', clientSecret: 's3cret', cacheSeconds: 1 } } })
  t.teardown(() => service.close())

  const token = await issuer.sign()
  t.equal((await call(service, '/orders', token)).statusCode, 200)
  t.equal((await call(service, '/orders', token)).statusCode, 200)
  t.equal(asked, 1, 'the second request used the cached answer')
  t.equal(requests[0]?.authorization, `Basic ${Buffer.from('orders:s3cret').toString('base64')}`, 'the service authenticates as its client')
  t.same(Object.fromEntries(new URLSearchParams(requests[0]?.body)), { token, token_type_hint: 'access_token' }, 'RFC 7662 §2.1')

  active = false
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await call(service, '/orders', token)).statusCode, 401, 'an inactive token is refused once the cache expires')

  down = true
  const unreachable = await call(service, '/orders', await issuer.sign())
  t.equal(unreachable.statusCode, 503, 'a gateway that cannot answer: 503')
  t.equal(unreachable.headers['retry-after'], '1')
})
