// What a resource server owner relies on: the gateway's tokens pass, with their subject,
// session and scopes; anything forged, foreign, expired or mistyped gets 401 with the
// RFC 6750 challenge; a missing scope 403; a key set that cannot be fetched 503, never a
// 401 and never the token let through; key rotation costs one fetch and a spray of unknown
// kids no fetch storm.

import { createSecretKey } from 'node:crypto'
import * as jose from 'jose'
import t from 'tap'
import { createTokenVerifier } from '../verify.js'
import { call, newKey, startIssuer, startService } from './support.js'

const issuer = await startIssuer()
t.teardown(() => issuer.close())
const service = await startService({ issuer: issuer.url })
t.teardown(() => service.close())

t.test('a valid token passes, with its subject, session and scopes', async (t) => {
  const token = await issuer.sign({ sub: 'user-1', sid: 'session-1' })
  const me = await call(service, '/me', token)
  t.equal(me.statusCode, 200)
  t.same(me.json(), { sub: 'user-1', sid: 'session-1' })
  t.equal((await call(service, '/orders', token)).statusCode, 200, 'its scope opens /orders')
})

t.test('a request without credentials gets the bare challenge', async (t) => {
  const answer = await call(service, '/me')
  t.equal(answer.statusCode, 401)
  t.equal(answer.headers['www-authenticate'], 'Bearer', 'RFC 6750 §3.1: no error code without credentials')
  t.same(Object.keys(answer.json()).sort(), ['error', 'message'])
  t.equal(answer.json().error, 'invalid_token')
})

t.test('forged, foreign, expired and mistyped tokens are refused with invalid_token', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const stranger = await newKey()
  const genuine = await issuer.sign()
  const [header, payload] = genuine.split('.')
  const published = (await (await fetch(`${issuer.url}/.well-known/jwks.json`)).json()) as { keys: object[] }
  const publicKeyBytes = Buffer.from(JSON.stringify(published.keys[0]))
  const cases: Record<string, string> = {
    'signed by another key under our kid': await issuer.sign({}, {}, { ...stranger, kid: JSON.parse(Buffer.from(header!, 'base64url').toString()).kid }),
    'a signature from another token': `${header}.${payload}.${(await issuer.sign({ sub: 'other' })).split('.')[2]}`,
    'alg none': `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: 'x' }))}.${payload}.`,
    'HS256 with the public key as the secret': await new jose.SignJWT({ sid: 's', scope: 'read:order' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: JSON.parse(Buffer.from(header!, 'base64url').toString()).kid })
      .setIssuer(issuer.url).setAudience('https://orders.example').setSubject('u').setExpirationTime(now + 600)
      .sign(createSecretKey(publicKeyBytes)),
    'an unknown kid': await issuer.sign({}, {}, stranger),
    'another issuer': await issuer.sign({ iss: 'https://evil.example' }),
    'another audience': await issuer.sign({ aud: 'https://payments.example' }),
    'expired': await issuer.sign({ exp: now - 60 }),
    'typ JWT (an ID token, a signup ticket)': await issuer.sign({}, { typ: 'JWT' }),
    'a user token without a session': await issuer.sign({ sid: undefined }),
    'a key-carrying header (jku)': await issuer.sign({}, { jku: 'https://evil.example/jwks' } as object),
    'a JWE': 'a.b.c.d.e',
    'over 4096 characters': `${header}.${'A'.repeat(4100)}.x`,
    'not a JWT': 'hello',
  }
  for (const [what, token] of Object.entries(cases)) {
    const answer = await call(service, '/me', token)
    t.equal(answer.statusCode, 401, what)
    t.equal(answer.headers['www-authenticate'], 'Bearer error="invalid_token"', `${what}: the challenge names the error`)
    t.equal(answer.json().error, 'invalid_token', what)
  }
  const basic = await call(service, '/me', undefined, 'Basic dXNlcjpwYXNz')
  t.equal(basic.statusCode, 401, 'another scheme is refused')
})

t.test('a token without the scope a route needs gets 403 naming it', async (t) => {
  const token = await issuer.sign({ scope: 'read:order' })
  const answer = await call(service, '/refunds', token)
  t.equal(answer.statusCode, 403)
  t.equal(answer.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="write:refund"')
  t.equal(answer.json().error, 'insufficient_scope')
  t.equal((await call(service, '/orders', await issuer.sign({ scope: 'write:refund' }))).statusCode, 403, 'a scope is not a prefix match')
})

t.test("a machine's token (client_credentials) passes as its client, with no session", async (t) => {
  const token = await issuer.sign({ sub: 'cart-service', client_id: 'cart-service', sid: undefined })
  const me = await call(service, '/me', token)
  t.equal(me.statusCode, 200)
  t.same(me.json(), { sub: 'cart-service', clientId: 'cart-service' })
})

t.test('a key set that cannot be fetched means 503, never 401 and never the token let through', async (t) => {
  const fresh = await startService({ issuer: issuer.url })
  t.teardown(() => fresh.close())
  issuer.setDown(true)
  t.teardown(() => issuer.setDown(false))
  const answer = await call(fresh, '/orders', await issuer.sign())
  t.equal(answer.statusCode, 503)
  t.equal(answer.headers['retry-after'], '1')
  t.equal(answer.json().error, 'unavailable')
})

t.test('a rotated key costs one fetch; a spray of unknown kids none beyond the cooldown', async (t) => {
  const rotating = await startService({ issuer: issuer.url, jwksCooldownSeconds: 1 })
  t.teardown(() => rotating.close())
  t.equal((await call(rotating, '/me', await issuer.sign())).statusCode, 200)
  const next = await issuer.rotate('EdDSA')
  // The service's copy of the key set is older than the cooldown when the new key first signs.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const before = issuer.fetches()
  for (let i = 0; i < 5; i++) t.equal((await call(rotating, '/me', await issuer.sign({}, {}, next))).statusCode, 200, 'the new key verifies')
  t.equal(issuer.fetches() - before, 1, 'one refetch for the new kid')
  const sprayed = issuer.fetches()
  for (let i = 0; i < 20; i++) t.equal((await call(rotating, '/me', await issuer.sign({}, {}, await newKey()))).statusCode, 401)
  t.equal(issuer.fetches() - sprayed, 0, `20 unknown kids within the cooldown cost no fetch (${issuer.fetches() - sprayed})`)
})

t.test('unsafe options are refused when the plugin is set up', async (t) => {
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', algorithms: ['HS256'] }), /asymmetric/)
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', algorithms: ['none'] }), /asymmetric/)
  t.throws(() => createTokenVerifier({ issuer: 'http://login.example', audience: 'a' }), /https/, 'plain http only on loopback')
  t.throws(() => createTokenVerifier({ issuer: `${issuer.url}/`, audience: 'a' }), /PUBLIC_URL/)
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: [] }), /audience/)
})
