// What a resource server owner relies on: the gateway's tokens pass (ES256, RS256, EdDSA),
// with their subject, session and scopes as documented; anything forged, foreign, expired or
// mistyped gets 401 with the RFC 6750 challenge; a missing scope 403; a key set that cannot be
// fetched 503, never a 401 and never the token let through; key rotation costs one fetch and
// a spray of unknown kids no fetch storm.

import { createServer } from 'node:http'
import * as jose from 'jose'
import t from 'tap'
import { createTokenVerifier } from '../verify.js'
import { AUDIENCE, call, close, freePort, GATEWAY_ALGORITHMS, listen, newKey, startIssuer, startService, within, type SigningKey } from './support.js'

const issuer = await startIssuer()
t.teardown(() => issuer.close())
const service = await startService({ issuer: issuer.url })
t.teardown(() => service.close())
const [es256, rs256, eddsa] = issuer.keys as [SigningKey, SigningKey, SigningKey]

t.test('a valid token passes, and request.accessToken is { sub, sid, scopes, claims }', async (t) => {
  for (const key of issuer.keys) {
    const token = await issuer.sign({ sub: 'user-1', sid: 'session-1', scope: 'read:order profile' }, {}, key)
    const me = await call(service, '/me', token)
    t.equal(me.statusCode, 200, `${key.alg} verifies`)
    t.same(me.json(), { sub: 'user-1', sid: 'session-1', scopes: ['read:order', 'profile'], claims: jose.decodeJwt(token) }, `${key.alg}: as documented`)
    t.same(Object.keys(me.json()).sort(), ['claims', 'scopes', 'sid', 'sub'], `${key.alg}: nothing else`)
  }
  t.equal(GATEWAY_ALGORITHMS.length, 3)
  const token = await issuer.sign()
  t.equal((await call(service, '/orders', token)).statusCode, 200, 'its scope opens /orders')
  t.equal((await call(service, '/me', undefined, `bearer ${token}`)).statusCode, 200, 'the scheme is case-insensitive (RFC 9110 §11.1)')
  const noScope = await call(service, '/me', await issuer.sign({ scope: undefined }))
  t.same(noScope.json().scopes, [], 'a token without scope has none')
  const now = Math.floor(Date.now() / 1000)
  t.equal((await call(service, '/me', await issuer.sign({ exp: now - 2 }))).statusCode, 200, 'expired within the 5 s clock tolerance')
})

t.test("a machine's token (client_credentials) passes as its client, with no session", async (t) => {
  const token = await issuer.sign({ sub: 'cart-service', client_id: 'cart-service', sid: undefined, scope: 'read:order' })
  const me = await call(service, '/me', token)
  t.equal(me.statusCode, 200)
  t.same(me.json(), { sub: 'cart-service', clientId: 'cart-service', scopes: ['read:order'], claims: jose.decodeJwt(token) })
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
  // The classic confusion attack: HMAC keyed with the published RSA key's PEM.
  const rsaPem = await jose.exportSPKI((await jose.importJWK(rs256.publicJwk, 'RS256')) as jose.CryptoKey)
  const claims = { iss: issuer.url, aud: AUDIENCE, sub: 'u', sid: 's', client_id: 'app', scope: 'read:order', iat: now, exp: now + 600 }
  const cases: Record<string, string> = {
    'signed by another key under our kid': await issuer.sign({}, {}, { ...stranger, kid: es256.kid }),
    'a signature from another token': `${header}.${payload}.${(await issuer.sign({ sub: 'other' })).split('.')[2]}`,
    'alg none': `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: es256.kid }))}.${payload}.`,
    'HS256 keyed with the public RSA key': await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: rs256.kid })
      .sign(new TextEncoder().encode(rsaPem)),
    'an unknown kid': await issuer.sign({}, {}, stranger),
    'no kid': await issuer.sign({}, { kid: undefined }),
    'another issuer': await issuer.sign({ iss: 'https://evil.example' }),
    'another audience': await issuer.sign({ aud: 'https://payments.example' }),
    'expired': await issuer.sign({ exp: now - 60 }),
    'not yet valid': await issuer.sign({ nbf: now + 120 }),
    'no exp': await issuer.sign({ exp: undefined }),
    'typ JWT (an ID token, a signup ticket)': await issuer.sign({}, { typ: 'JWT' }),
    'no typ': await issuer.sign({}, { typ: undefined }),
    'no sub': await issuer.sign({ sub: undefined }),
    'a user token without a session': await issuer.sign({ sid: undefined }),
    'an empty session': await issuer.sign({ sid: '' }),
    'a scope that is not a string': await issuer.sign({ scope: ['read:order'] }),
    'genuinely signed, with a key URL (jku)': await issuer.sign({}, { jku: 'https://evil.example/jwks' }),
    'genuinely signed, with a certificate chain (x5c)': await issuer.sign({}, { x5c: ['MIIB'] }),
    'signed by the key it carries (jwk)': await issuer.sign({}, { jwk: stranger.publicJwk, kid: es256.kid }, stranger),
    'a JWE': await new jose.CompactEncrypt(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: 'at+jwt', kid: es256.kid })
      .encrypt(new Uint8Array(32)),
    'genuinely signed, over 4096 characters': await issuer.sign({ padding: 'x'.repeat(4000) }),
    'not a JWT': 'hello',
    'three parts of nothing': 'a.b.c',
  }
  for (const [what, token] of Object.entries(cases)) {
    const answer = await call(service, '/me', token)
    t.equal(answer.statusCode, 401, what)
    t.equal(answer.headers['www-authenticate'], 'Bearer error="invalid_token"', `${what}: the challenge names the error`)
    t.equal(answer.json().error, 'invalid_token', what)
  }
  const long = cases['genuinely signed, over 4096 characters']!
  await t.rejects(createTokenVerifier({ issuer: issuer.url, audience: AUDIENCE })(long), /too long/, 'the verifier alone refuses it too, before any parsing')
  t.equal((await call(service, '/me', undefined, 'Basic dXNlcjpwYXNz')).statusCode, 401, 'another scheme is refused')
  t.equal((await call(service, '/me', undefined, `Bearer ${genuine} extra`)).statusCode, 401, 'a header with more than the token is refused')
})

t.test('the algorithm list is pinned: a published key of another algorithm does not verify', async (t) => {
  const esOnly = await startService({ issuer: issuer.url, algorithms: ['ES256'] })
  t.teardown(() => esOnly.close())
  t.equal((await call(esOnly, '/me', await issuer.sign({}, {}, es256))).statusCode, 200)
  t.equal((await call(esOnly, '/me', await issuer.sign({}, {}, rs256))).statusCode, 401, 'RS256 refused')
  t.equal((await call(esOnly, '/me', await issuer.sign({}, {}, eddsa))).statusCode, 401, 'EdDSA refused')
})

t.test('a token without the scopes a route needs gets 403 naming them', async (t) => {
  const answer = await call(service, '/refunds', await issuer.sign({ scope: 'read:order' }))
  t.equal(answer.statusCode, 403)
  t.equal(answer.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="write:refund"')
  t.equal(answer.json().error, 'insufficient_scope')
  t.equal((await call(service, '/orders', await issuer.sign({ scope: 'read:orders write:refund' }))).statusCode, 403, 'a scope is not a prefix match')
  const partial = await call(service, '/exports', await issuer.sign({ scope: 'read:order' }))
  t.equal(partial.statusCode, 403, 'requireScope(a, b) needs both')
  t.equal(partial.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="read:order export:order"')
  t.equal((await call(service, '/exports', await issuer.sign({ scope: 'export:order read:order' }))).statusCode, 200)
})

t.test('a key set that cannot be fetched means 503, never 401 and never the token let through', async (t) => {
  const token = await issuer.sign()
  const failing = await startService({ issuer: issuer.url })
  t.teardown(() => failing.close())
  issuer.setDown(true)
  const erroring = await call(failing, '/orders', token)
  issuer.setDown(false)
  t.equal(erroring.statusCode, 503, 'the key set answers 500')
  t.equal(erroring.headers['retry-after'], '1')
  t.same(Object.keys(erroring.json()).sort(), ['error', 'message'])
  t.equal(erroring.json().error, 'unavailable')

  const refused = await startService({ issuer: issuer.url, jwksUri: `http://127.0.0.1:${await freePort()}/.well-known/jwks.json` })
  t.teardown(() => refused.close())
  const nobody = await call(refused, '/orders', token)
  t.equal(nobody.statusCode, 503, 'nothing listens where the key set should be')
  t.equal(nobody.headers['retry-after'], '1')

  const silent = createServer(() => {})
  const silentUrl = await listen(silent)
  t.teardown(() => close(silent))
  const hanging = await startService({ issuer: issuer.url, jwksUri: `${silentUrl}/.well-known/jwks.json`, jwksTimeoutMs: 300 })
  t.teardown(() => hanging.close())
  const started = Date.now()
  const slow = await within(5000, call(hanging, '/orders', token))
  const waited = Date.now() - started
  t.equal(slow === 'no answer' ? slow : slow.statusCode, 503, 'a key set that never answers')
  t.ok(waited < 2000, `answered after jwksTimeoutMs (${waited} ms)`)
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
  for (let i = 0; i < 20; i++) t.equal((await call(rotating, '/me', await issuer.sign({}, {}, await newKey()))).statusCode, 401, 'an unknown kid: 401, not 503')
  t.equal(issuer.fetches() - sprayed, 0, `20 unknown kids within the cooldown cost no fetch (${issuer.fetches() - sprayed})`)
})

t.test('unsafe options are refused when the plugin is set up', async (t) => {
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', algorithms: ['HS256'] }), /asymmetric/)
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', algorithms: ['none'] }), /asymmetric/)
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', algorithms: [] }), /asymmetric/)
  t.throws(() => createTokenVerifier({ issuer: 'http://login.example', audience: 'a' }), /https/, 'plain http only on loopback')
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', jwksUri: 'http://keys.example/jwks.json' }), /https/)
  t.throws(() => createTokenVerifier({ issuer: `${issuer.url}/`, audience: 'a' }), /PUBLIC_URL/)
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: [] }), /audience/)
  t.throws(() => createTokenVerifier({ issuer: issuer.url, audience: 'a', clockToleranceSeconds: 300 }), /clockTolerance/)
  t.throws(() => service.requireScope('has space'), /scope/, 'requireScope takes scope tokens only')
})
