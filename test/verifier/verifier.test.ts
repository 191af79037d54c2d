// The verifier plugin in a resource server in front of a real gateway (listening on
// loopback, so the JWKS is fetched over HTTP): real tokens are accepted and their
// scopes enforced; forged, foreign, expired and mistyped ones are refused with the
// RFC 6750 challenge; unknown kids cause no fetch storm; key rotation needs one refetch.

import { createPublicKey, randomUUID, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import * as jose from 'jose'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { createGateway } from '../../src/gateway.js'
import { loginWithGoogle, startTestGateway } from '../support/gateway.js'
import { call, connectSessionRedis, startResourceServer } from './fixtures/resource-server.js'

const gateway = await startTestGateway({ database: 'pglite', listen: true })
t.teardown(() => gateway.close())
const issuer = gateway.config.publicUrl
const audience = gateway.config.tokenAudience
const { keys, accessTokens } = gateway.services

// Every JWKS request any gateway instance of this test answers.
let jwksFetches = 0
const countJwksFetches = (request: IncomingMessage) => {
  if (request.url?.startsWith('/.well-known/jwks.json')) jwksFetches++
}
gateway.app.server.on('request', countJwksFetches)

const redis = await connectSessionRedis(gateway.testRedis.url)
t.teardown(() => redis.disconnect())

const login = await loginWithGoogle(gateway, { sub: 'verifier-ann', name: 'Ann' })
const session = login.json()
const { sub: userId, sid: sessionId } = jose.decodeJwt(session.accessToken) as { sub: string; sid: string }

const server = await startResourceServer({ issuer, audience, revocation: { redis } })
t.teardown(() => server.close())

/** A token signed with the gateway's own current key, with any claims and header. */
async function signed(claims: jose.JWTPayload = {}, header: Partial<jose.JWTHeaderParameters> = {}, key: jose.CryptoKey | KeyObject = keys.current.privateKey) {
  const now = Math.floor(Date.now() / 1000)
  return new jose.SignJWT({ iss: issuer, aud: audience, sub: userId, sid: sessionId, iat: now, exp: now + 300, jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: keys.current.alg, kid: keys.current.kid, typ: 'at+jwt', ...header })
    .sign(key)
}

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

t.test('a real access token: 200, and the handler sees sub, sid and scopes', async (t) => {
  t.equal(login.statusCode, 200, { body: login.body })
  const me = await call(server, '/me', session.accessToken)
  t.equal(me.statusCode, 200, { body: me.body })
  t.same(me.json(), { sub: userId, sid: sessionId, scopes: [] }, "a user token names its session; its client_id (the app) does not make it a client's token")
  t.equal(session.user.id, userId, 'sub is the user id the gateway gave the client')
  const lowercase = await server.inject({ method: 'GET', url: '/me', headers: { authorization: `bearer ${session.accessToken}` } })
  t.equal(lowercase.statusCode, 200, 'the auth scheme is case-insensitive (RFC 9110 §11.1)')
  t.same((await call(server, '/public', session.accessToken)).json(), { token: null }, 'unprotected routes do not verify')
})

t.test('scopes: present → 200, missing → 403 insufficient_scope naming the scope', async (t) => {
  const { accessToken: reader } = await accessTokens.issue({ userId, sessionId, scope: 'read:order' })
  const read = await call(server, '/orders', reader)
  t.equal(read.statusCode, 200, { body: read.body })
  t.same(read.json().scopes, ['read:order'])

  const write = await call(server, '/orders', reader, 'POST')
  t.equal(write.statusCode, 403)
  t.equal(write.json().error, 'insufficient_scope')
  t.equal(write.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="read:order write:order"')

  const { accessToken: writer } = await accessTokens.issue({ userId, sessionId, scope: 'read:order write:order profile' })
  const written = await call(server, '/orders', writer, 'POST')
  t.equal(written.statusCode, 200, 'every required scope present')
  t.same(written.json().scopes, ['read:order', 'write:order', 'profile'])

  const unscoped = await call(server, '/orders', session.accessToken)
  t.equal(unscoped.statusCode, 403, 'a login token carries no scopes yet')
  t.equal(unscoped.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="read:order"')

  t.throws(() => server.requireScope(), TypeError, 'requireScope() needs a scope')
  t.throws(() => server.requireScope('read"order'), TypeError, 'a scope that would break the header is refused at start-up')
})

t.test('no token: 401 invalid_token with the bare challenge (RFC 6750 §3.1)', async (t) => {
  const none = await call(server, '/me')
  t.equal(none.statusCode, 401)
  t.same(none.json(), { error: 'invalid_token', message: 'an access token is required' })
  t.equal(none.headers['www-authenticate'], 'Bearer')
  t.equal((await call(server, '/orders')).headers['www-authenticate'], 'Bearer', 'requireScope too')
})

t.test('bad tokens: 401 invalid_token with error="invalid_token"', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const { privateKey: strangerKey, publicKey: strangerPublic } = await jose.generateKeyPair('ES256')
  const publicPem = createPublicKey({ key: keys.current.publicJwk as JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString()
  const cases: [string, string | Promise<string>][] = [
    ['garbage', 'not-a-token'],
    ['three segments of garbage', 'a.b.c'],
    ['a token longer than 4096 characters', `${'a'.repeat(3000)}.${'b'.repeat(1100)}.c`],
    ['alg none', `${b64({ alg: 'none', typ: 'at+jwt', kid: keys.current.kid })}.${b64({ iss: issuer, aud: audience, sub: userId, sid: sessionId, exp: now + 300 })}.`],
    ['HS256 keyed with the gateway\'s public key', new jose.SignJWT({ iss: issuer, aud: audience, sub: userId, sid: sessionId })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keys.current.kid })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(publicPem))],
    ['signed by a stranger under an unknown kid', signed({}, { kid: 'stranger' }, strangerKey)],
    ['signed by a stranger under the gateway\'s kid', signed({}, {}, strangerKey)],
    ['the stranger\'s key embedded in the header (jwk)', jose.exportJWK(strangerPublic).then((jwk) => signed({}, { jwk }, strangerKey))],
    ['a key URL in the header (jku)', signed({}, { jku: 'http://127.0.0.1:1/jwks.json' })],
    ['no kid', signed({}, { kid: undefined })],
    ['typ JWT', signed({}, { typ: 'JWT' })],
    ['no typ', signed({}, { typ: undefined })],
    ['expired', signed({ iat: now - 700, exp: now - 60 })],
    ['not yet valid (nbf)', signed({ nbf: now + 120 })],
    ['no exp', signed({ exp: undefined })],
    ['another issuer', signed({ iss: 'https://evil.example' })],
    ['another audience', signed({ aud: 'https://payments.example' })],
    ['no sid', signed({ sid: undefined })],
    ['no sub', signed({ sub: undefined })],
    ['a non-string scope', signed({ scope: ['read:order'] })],
    ['a JWE', new jose.EncryptJWT({ iss: issuer, aud: audience, sub: userId, sid: sessionId })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: 'at+jwt', kid: keys.current.kid })
      .setExpirationTime('5m')
      .encrypt(new Uint8Array(32))],
    ['a session that does not exist', signed({ sid: 'no-such-session' })],
  ]
  for (const [name, pending] of cases) {
    const token = await pending
    for (const url of ['/me', '/orders']) {
      const response = await call(server, url, token)
      t.equal(response.statusCode, 401, `${name} → 401 on ${url}`)
      t.equal(response.json().error, 'invalid_token', name)
      t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"', name)
    }
  }
  const basic = await server.inject({ method: 'GET', url: '/me', headers: { authorization: 'Basic dXNlcjpwYXNz' } })
  t.equal(basic.statusCode, 401, 'another auth scheme')
  t.equal(basic.headers['www-authenticate'], 'Bearer error="invalid_token"')
  const expired = await call(server, '/me', await signed({ iat: now - 700, exp: now - 60 }))
  t.equal(expired.json().message, 'the access token has expired')
  // The same claims with the right header and key pass: the refusals above are the claim's doing.
  t.equal((await call(server, '/me', await signed())).statusCode, 200, 'the control token is accepted')
})

t.test('a token for resource A is refused by resource B', async (t) => {
  const orders = await startResourceServer({ issuer, audience: 'https://orders.example' })
  const payments = await startResourceServer({ issuer, audience: ['https://payments.example', 'https://billing.example'] })
  t.teardown(() => Promise.all([orders.close(), payments.close()]))
  const forOrders = await signed({ aud: 'https://orders.example', scope: 'read:order' })
  t.equal((await call(orders, '/orders', forOrders)).statusCode, 200, 'A accepts its own token')
  const refused = await call(payments, '/orders', forOrders)
  t.equal(refused.statusCode, 401, 'B refuses it')
  t.equal(refused.headers['www-authenticate'], 'Bearer error="invalid_token"')
  t.equal((await call(payments, '/me', await signed({ aud: 'https://billing.example' }))).statusCode, 200, 'B takes any of its audiences')
  t.equal((await call(orders, '/me', session.accessToken)).statusCode, 401, 'the gateway\'s own audience is not A\'s')
})

t.test('unknown kids do not storm the JWKS: one fetch per cooldown', async (t) => {
  const fresh = await startResourceServer({ issuer, audience })
  t.teardown(() => fresh.close())
  const before = jwksFetches
  const { privateKey } = await jose.generateKeyPair('ES256')
  const randomKid = () => signed({}, { kid: randomUUID() }, privateKey)
  // 20 at once on a cold cache: jose shares one fetch between them.
  const burst = await Promise.all(Array.from({ length: 20 }, async () => call(fresh, '/me', await randomKid())))
  t.same([...new Set(burst.map((response) => response.statusCode))], [401])
  t.equal((await call(fresh, '/me', session.accessToken)).statusCode, 200, 'a real token still passes (no new fetch: its kid is cached)')
  for (let i = 0; i < 20; i++) t.equal((await call(fresh, '/me', await randomKid())).statusCode, 401)
  const fetched = jwksFetches - before
  t.comment(`${burst.length + 21} requests, ${fetched} JWKS fetch(es)`)
  t.ok(fetched >= 1 && fetched <= 2, `at most 2 JWKS fetches (got ${fetched})`)
})

t.test('the JWKS cannot be fetched: 503 unavailable, not 401', async (t) => {
  const nowhere = await startResourceServer({ issuer, audience, jwksUri: 'http://127.0.0.1:9/.well-known/jwks.json', jwksTimeoutMs: 500 })
  t.teardown(() => nowhere.close())
  const response = await call(nowhere, '/me', session.accessToken)
  t.equal(response.statusCode, 503)
  t.equal(response.json().error, 'unavailable')
})

t.test('options that would weaken verification are refused at registration', async (t) => {
  for (const [name, options] of [
    ['HS256', { algorithms: ['HS256'] }],
    ['none', { algorithms: ['ES256', 'none'] }],
    ['an empty algorithm list', { algorithms: [] }],
    ['a large clock tolerance', { clockToleranceSeconds: 300 }],
    ['a plain-http JWKS off loopback', { jwksUri: 'http://gateway.example/.well-known/jwks.json' }],
    ['an empty audience', { audience: '' }],
    ['an issuer with a trailing slash', { issuer: `${issuer}/` }],
    ['revocation without a client', { revocation: {} }],
  ] as const) {
    await t.rejects(startResourceServer({ issuer, audience, ...(options as object) }), TypeError, name)
  }
})

// Last: it replaces the gateway with a restarted one.
t.test('key rotation: a restart with a new first key needs one refetch; old tokens still pass', async (t) => {
  // The next instance: the same URL, Redis and old key, with a new signing key first.
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const newKey = { ...(await jose.exportJWK(privateKey)), kid: 'test-key-2', alg: 'ES256' }
  const oldKeys = (JSON.parse(gateway.config.signingKeys!) as { keys: jose.JWK[] }).keys
  const restarted = await createGateway(
    loadConfig({
      NODE_ENV: 'test',
      PUBLIC_URL: issuer,
      REDIS_URL: gateway.testRedis.url,
      DATA_DIR: 'memory://',
      SIGNING_KEYS: JSON.stringify({ keys: [newKey, ...oldKeys] }),
      LOG_LEVEL: 'silent',
    }),
    false,
  )
  t.teardown(() => restarted.close())
  restarted.app.server.on('request', countJwksFetches)

  const rotating = await startResourceServer({ issuer, audience, revocation: { redis }, jwksCooldownSeconds: 2 })
  t.teardown(() => rotating.close())
  const before = jwksFetches
  t.equal((await call(rotating, '/me', session.accessToken)).statusCode, 200)
  t.equal(jwksFetches - before, 1, 'the first request fetched the key set')

  // The restart: the old instance stops listening, the new one takes its port.
  await gateway.app.close()
  await restarted.app.listen({ port: Number(new URL(issuer).port), host: '127.0.0.1' })

  const { accessToken: newToken } = await restarted.services.accessTokens.issue({ userId, sessionId })
  t.equal(jose.decodeProtectedHeader(newToken).kid, 'test-key-2')
  const early = await call(rotating, '/me', newToken)
  t.equal(early.statusCode, 401, 'within the cooldown of the last fetch the new kid is not fetched yet (publish keys before signing with them)')
  t.equal(jwksFetches - before, 1, 'and no fetch was made for it')

  await sleep(2100)
  const accepted = await call(rotating, '/me', newToken)
  t.equal(accepted.statusCode, 200, { body: accepted.body, message: 'after the cooldown, the new kid is accepted' })
  t.equal(jwksFetches - before, 2, 'after exactly one refetch')
  t.equal((await call(rotating, '/me', session.accessToken)).statusCode, 200, 'tokens of the old key still pass')
  for (let i = 0; i < 5; i++) await call(rotating, '/me', (await restarted.services.accessTokens.issue({ userId, sessionId })).accessToken)
  t.equal(jwksFetches - before, 2, 'and no further fetches')
})

t.test('a machine-to-machine token (client_credentials) is accepted without a session', async (t) => {
  const { accessToken } = await accessTokens.issueForClient({ clientId: 'cart-service', audience, scope: 'read:order' })
  const orders = await call(server, '/orders', accessToken)
  t.equal(orders.statusCode, 200, 'with revocation on: a client token has no session to check')
  t.same(orders.json(), { sub: 'cart-service', clientId: 'cart-service', scopes: ['read:order'] })
  const withSession = await call(server, '/me', await signed({ client_id: 'cart-service' }))
  t.same(withSession.json(), { sub: userId, sid: sessionId, scopes: [] }, "a token with a session is the user's, whatever client_id it names: never a client's")
  t.equal((await call(server, '/orders', await signed({ sid: undefined, client_id: 'someone-else', scope: 'read:order' }))).statusCode, 401, 'client_id must be the subject')
  t.equal((await call(server, '/orders', await signed({ sid: undefined, scope: 'read:order' }))).statusCode, 401, 'neither session nor client')
})
