// Forged access tokens (RFC 8725 §3; RFC 9068): /auth/me refuses every token we did not issue,
// or issued for something else, with 401 invalid_token. Two controls make the refusals
// mean something: the genuine token is accepted, and a token we mint ourselves with the
// gateway's own key and the genuine claims is accepted too, so each forgery below fails
// because of the one thing it changes, not because our minting is broken.

import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as jose from 'jose'
import t from 'tap'
import { googleSdkIdToken, loginWithGoogle, startTestGateway } from './support/gateway.js'

type Tap = Pick<typeof t, 'equal' | 'ok' | 'match' | 'notMatch' | 'same' | 'type'>

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway

// Any outbound fetch while /auth/me judges a token would be a key fetched from a header.
let fetches = 0
const realFetch = globalThis.fetch
globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
  fetches += 1
  return realFetch(input, init)
}) as typeof fetch
t.teardown(() => {
  globalThis.fetch = realFetch
})

// The attacker's key, and a loopback server publishing it: if the gateway ever followed a
// `jku`/`x5u` header, it would find a key that verifies the forgery (and the hit is counted).
const attacker = await jose.generateKeyPair('ES256', { extractable: true })
const attackerJwk = { ...(await jose.exportJWK(attacker.publicKey)), kid: 'attacker-key', alg: 'ES256', use: 'sig' }
let attackerServerHits = 0
const attackerServer = createServer((_request, response) => {
  attackerServerHits += 1
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [attackerJwk] }))
})
await new Promise<void>((resolve) => attackerServer.listen(0, '127.0.0.1', resolve))
t.teardown(() => new Promise<void>((resolve) => attackerServer.close(() => resolve())))
const attackerJwksUrl = `http://127.0.0.1:${(attackerServer.address() as AddressInfo).port}/jwks.json`

// A real login: the genuine token and its claims.
const account = { sub: 'forged-tokens-ann', email: 'ann@example.com', name: 'Ann' }
const login = await loginWithGoogle(gateway, account)
if (login.statusCode !== 200 || login.json().status !== 'authenticated') throw new Error(`login failed: ${login.body}`)
const genuine = login.json() as { accessToken: string; refreshToken: string; user: { id: string } }
const genuineHeader = jose.decodeProtectedHeader(genuine.accessToken)
const genuineClaims = jose.decodeJwt(genuine.accessToken)

// The gateway's own signing key, as an operator would hold it.
const signingJwks = JSON.parse(gateway.config.signingKeys!) as { keys: (jose.JWK & { kid: string; alg: string })[] }
const ourJwk = signingJwks.keys[0]!
const ourKey = (await jose.importJWK(ourJwk, ourJwk.alg)) as jose.CryptoKey

const jwksResponse = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
const publishedJwks = jwksResponse.json() as { keys: (jose.JWK & Record<string, unknown>)[] }
const ourPublicJwk = publishedJwks.keys.find((key) => key.kid === genuineHeader.kid)
if (!ourPublicJwk) throw new Error(`the JWKS does not publish ${String(genuineHeader.kid)}: ${jwksResponse.body}`)

const now = () => Math.floor(Date.now() / 1000)
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** The genuine claims with a fresh jti, iat and exp. */
function claims(overrides: Record<string, unknown> = {}, remove: string[] = []): jose.JWTPayload {
  const payload: Record<string, unknown> = { ...genuineClaims, jti: randomUUID(), iat: now(), exp: now() + 300, ...overrides }
  for (const name of remove) delete payload[name]
  return payload
}

/** The genuine header: alg, kid and typ at+jwt. */
function header(overrides: Record<string, unknown> = {}, remove: string[] = []): jose.JWTHeaderParameters {
  const result: Record<string, unknown> = { alg: ourJwk.alg, kid: ourJwk.kid, typ: 'at+jwt', ...overrides }
  for (const name of remove) delete result[name]
  return result as jose.JWTHeaderParameters
}

function sign(payload: jose.JWTPayload, protectedHeader: jose.JWTHeaderParameters, key: jose.CryptoKey | Uint8Array, options?: jose.SignOptions) {
  return new jose.SignJWT(payload).setProtectedHeader(protectedHeader).sign(key, options)
}

const me = (accessToken: string) => app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } })

/** /auth/me must answer 401 invalid_token, quickly, without fetching anything. */
async function refused(t: Tap, what: string, token: string): Promise<void> {
  const fetchesBefore = fetches
  const hitsBefore = attackerServerHits
  const started = performance.now()
  const response = await me(token)
  const elapsed = performance.now() - started
  t.equal(response.statusCode, 401, `${what}: 401 (got ${response.statusCode} ${response.body.slice(0, 200)})`)
  t.match(String(response.headers['content-type']), /^application\/json/, `${what}: a JSON answer`)
  const body = response.json() as { error?: unknown; message?: unknown }
  t.equal(body.error, 'invalid_token', `${what}: error invalid_token`)
  t.type(body.message, 'string', `${what}: a message`)
  t.match(String(response.headers['www-authenticate'] ?? ''), /^Bearer\b/, `${what}: a Bearer challenge`)
  t.notMatch(response.body, /"(id|nickname|email|identities)"/, `${what}: no user data in the answer`)
  t.equal(fetches, fetchesBefore, `${what}: no outbound fetch`)
  t.equal(attackerServerHits, hitsBefore, `${what}: the attacker's key server was not contacted`)
  t.ok(elapsed < 2000, `${what}: answered in ${Math.round(elapsed)} ms, without waiting on a network`)
}

t.test('the controls: the genuine token, and a token minted with our key and the genuine claims, are accepted', async (t) => {
  t.equal(genuineHeader.typ, 'at+jwt')
  t.equal(genuineHeader.kid, ourJwk.kid, 'the token is signed by the first configured key')
  t.type(genuineClaims.sid, 'string')
  const response = await me(genuine.accessToken)
  t.equal(response.statusCode, 200, `${response.statusCode >= 300 ? response.body : 'accepted'}`)
  t.equal(response.json().id, genuine.user.id)

  const minted = await sign(claims(), header(), ourKey)
  const mintedResponse = await me(minted)
  t.equal(mintedResponse.statusCode, 200, `our minting reproduces a valid token: ${mintedResponse.statusCode >= 300 ? mintedResponse.body : ''}`)
  t.equal(mintedResponse.json().id, genuine.user.id)
})

t.test('the JWKS document publishes public keys only, each with kid and alg', async (t) => {
  t.equal(jwksResponse.statusCode, 200)
  t.ok(publishedJwks.keys.length >= 1, 'at least one key')
  for (const key of publishedJwks.keys) {
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) {
      t.equal(key[member], undefined, `key ${String(key.kid)} has no private member "${member}"`)
    }
    t.type(key.kid, 'string', 'every key has a kid')
    t.ok(typeof key.alg === 'string' && ['ES256', 'EdDSA'].includes(key.alg), `key ${String(key.kid)} names its alg (${String(key.alg)})`)
    t.ok(['EC', 'OKP'].includes(String(key.kty)), 'an asymmetric key type')
  }
  t.notMatch(jwksResponse.body, /"d"\s*:/, 'no "d" anywhere in the document')
  // The published key is the one that verifies the genuine token: a client can rely on it.
  const verified = await jose.jwtVerify(genuine.accessToken, jose.createLocalJWKSet(publishedJwks), { typ: 'at+jwt' })
  t.equal(verified.payload.sub, genuineClaims.sub)
})

t.test('unsigned and algorithm-confused tokens → 401', async (t) => {
  const payload = claims()
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    await refused(t, `alg ${alg}, empty signature`, `${b64(header({ alg }))}.${b64(payload)}.`)
    await refused(t, `alg ${alg}, genuine signature kept`, `${b64(header({ alg }))}.${b64(payload)}.${genuine.accessToken.split('.')[2]}`)
  }
  await refused(t, 'alg ES256 with an empty signature', `${b64(header())}.${b64(payload)}.`)
  await refused(t, 'the genuine token without its signature', genuine.accessToken.split('.').slice(0, 2).join('.'))
  await refused(t, 'the genuine token with an empty signature', `${genuine.accessToken.split('.').slice(0, 2).join('.')}.`)

  // HS256 keyed with our public key, in every form an attacker can fetch.
  const publicKey = await jose.importJWK(ourPublicJwk, String(ourPublicJwk.alg))
  const pem = await jose.exportSPKI(publicKey as jose.CryptoKey)
  const secrets: [string, string][] = [
    ['the public JWK JSON', JSON.stringify(ourPublicJwk)],
    ['the JWKS document as served', jwksResponse.body],
    ['the public key PEM', pem],
    ['the public key PEM without its final newline', pem.trimEnd()],
    ['the x coordinate', String(ourPublicJwk.x)],
  ]
  for (const [what, secret] of secrets) {
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const token = await sign(payload, header({ alg }), new TextEncoder().encode(secret))
      await refused(t, `${alg} keyed with ${what}`, token)
    }
  }

  // Another algorithm family, with our kid.
  const rsa = await jose.generateKeyPair('RS256')
  await refused(t, 'RS256 by an attacker key with our kid', await sign(payload, header({ alg: 'RS256' }), rsa.privateKey))
  const pss = await jose.generateKeyPair('PS256')
  await refused(t, 'PS256 by an attacker key with our kid', await sign(payload, header({ alg: 'PS256' }), pss.privateKey))
  const p384 = await jose.generateKeyPair('ES384')
  await refused(t, 'ES384 by an attacker key with our kid', await sign(payload, header({ alg: 'ES384' }), p384.privateKey))
  const ed = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' })
  await refused(t, 'EdDSA by an attacker key with our kid', await sign(payload, header({ alg: 'EdDSA' }), ed.privateKey))
  await refused(t, 'EdDSA by an attacker key with no kid', await sign(payload, header({ alg: 'EdDSA' }, ['kid']), ed.privateKey))
})

t.test('foreign keys → 401', async (t) => {
  const payload = claims()
  await refused(t, 'ES256 by another key with an unknown kid', await sign(payload, header({ kid: 'attacker-key' }), attacker.privateKey))
  await refused(t, 'ES256 by another key with our kid', await sign(payload, header(), attacker.privateKey))
  await refused(t, 'ES256 by another key with no kid', await sign(payload, header({}, ['kid']), attacker.privateKey))
  for (const kid of ['../../../../etc/passwd', "' OR '1'='1", '{"$ne":null}', `${ourJwk.kid}\u0000`, '']) {
    await refused(t, `ES256 by another key with kid ${JSON.stringify(kid)}`, await sign(payload, header({ kid }), attacker.privateKey))
  }
  // A kid that is not a string.
  const [, body] = (await sign(payload, header(), attacker.privateKey)).split('.')
  await refused(t, 'a kid that is an object', `${b64(header({ kid: { $ne: null } }))}.${body}.AAAA`)
  await refused(t, 'a kid that is a number', `${b64(header({ kid: 1 }))}.${body}.AAAA`)

  // Our genuine token with its claims changed: the signature no longer matches.
  const [genuineHead, , genuineSignature] = genuine.accessToken.split('.')
  await refused(t, 'the genuine signature on another sub', `${genuineHead}.${b64({ ...genuineClaims, sub: 'someone-else' })}.${genuineSignature}`)
  await refused(t, 'the genuine signature on a later exp', `${genuineHead}.${b64({ ...genuineClaims, exp: now() + 86400 })}.${genuineSignature}`)
  await refused(t, 'the genuine signature under a header without typ', `${b64(header({}, ['typ']))}.${genuine.accessToken.split('.')[1]}.${genuineSignature}`)
})

t.test('key material in the header is never used or fetched → 401', async (t) => {
  const payload = claims()
  const embedded = await jose.exportJWK(attacker.publicKey)
  await refused(t, 'a jwk header with the attacker key and its kid', await sign(payload, header({ kid: 'attacker-key', jwk: embedded }), attacker.privateKey))
  await refused(t, 'a jwk header with the attacker key and our kid', await sign(payload, header({ jwk: embedded }), attacker.privateKey))
  await refused(t, 'a jwk header with the attacker key and no kid', await sign(payload, header({ jwk: embedded }, ['kid']), attacker.privateKey))

  await refused(t, 'a jku header pointing at 127.0.0.1:1', await sign(payload, header({ kid: 'attacker-key', jku: 'http://127.0.0.1:1/jwks.json' }), attacker.privateKey))
  await refused(t, 'a jku header pointing at a live key server', await sign(payload, header({ kid: 'attacker-key', jku: attackerJwksUrl }), attacker.privateKey))
  await refused(t, 'a jku header with our kid', await sign(payload, header({ jku: attackerJwksUrl }), attacker.privateKey))
  await refused(t, 'an x5u header pointing at a live server', await sign(payload, header({ kid: 'attacker-key', x5u: attackerJwksUrl }), attacker.privateKey))
  await refused(t, 'an x5c header with garbage', await sign(payload, header({ kid: 'attacker-key', x5c: ['MIIBkTCB+wIJAKHBfpE'] }), attacker.privateKey))
  t.equal(attackerServerHits, 0, 'the attacker key server was never contacted')
})

t.test('tokens signed with our key but not valid access tokens → 401', async (t) => {
  const cases: [string, jose.JWTPayload, jose.JWTHeaderParameters][] = [
    ['a wrong aud (another service)', claims({ aud: 'https://other-service.example' }), header()],
    ['an aud that only extends ours', claims({ aud: `${String(genuineClaims.aud)}.evil.example` }), header()],
    ['no aud', claims({}, ['aud']), header()],
    ['a wrong iss', claims({ iss: 'https://evil.example' }), header()],
    ['our iss with a trailing slash', claims({ iss: `${String(genuineClaims.iss)}/` }), header()],
    ['no iss', claims({}, ['iss']), header()],
    ['an expired exp', claims({ iat: now() - 7200, exp: now() - 3600 }), header()],
    ['an exp just past the clock tolerance', claims({ exp: now() - 60 }), header()],
    ['no exp', claims({}, ['exp']), header()],
    ['an exp that is a string', claims({ exp: String(now() + 300) }), header()],
    ['a future nbf', claims({ nbf: now() + 3600 }), header()],
    ['no sid', claims({}, ['sid']), header()],
    ['a sid that is not a string', claims({ sid: 42 }), header()],
    ['no sub', claims({}, ['sub']), header()],
    ['no jti', claims({}, ['jti']), header()],
    ['no iat', claims({}, ['iat']), header()],
    ['typ JWT instead of at+jwt', claims(), header({ typ: 'JWT' })],
    ['no typ', claims(), header({}, ['typ'])],
    ['typ id_token-ish', claims(), header({ typ: 'id+jwt' })],
    ['a sid naming no live session', claims({ sid: 'AAAAAAAAAAAAAAAAAAAAAA' }), header()],
    ['a sub of nobody with the genuine sid', claims({ sub: 'AAAAAAAAAAAAAAAAAAAAAA' }), header()],
  ]
  for (const [what, payload, protectedHeader] of cases) {
    await refused(t, `our key, ${what}`, await sign(payload, protectedHeader, ourKey))
  }
  // An unknown critical header parameter must not be ignored (RFC 7515 §4.1.11).
  await refused(t, 'our key, an unknown crit parameter', await sign(claims(), header({ crit: ['x-gw'], 'x-gw': true }), ourKey, { crit: { 'x-gw': true } }))
})

t.test('JWE and other non-JWS shapes → 401', async (t) => {
  const payload = new TextEncoder().encode(JSON.stringify(claims()))
  const ourPublic = await jose.importJWK(ourPublicJwk, 'ECDH-ES')
  const jwe = await new jose.CompactEncrypt(payload)
    .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', kid: ourJwk.kid, typ: 'at+jwt' })
    .encrypt(ourPublic)
  t.equal(jwe.split('.').length, 5, 'a real JWE, encrypted to our public key')
  await refused(t, 'a JWE encrypted to our public key', jwe)
  const dir = `${b64({ alg: 'dir', enc: 'A128GCM', zip: 'DEF' })}..AAAAAAAAAAAAAAAA.${Buffer.from(payload).toString('base64url')}.AAAAAAAAAAAAAAAAAAAAAA`
  await refused(t, 'a compressed dir JWE', dir)
  await refused(t, 'a PBES2 JWE header', `${b64({ alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', p2c: 2_000_000_000, p2s: 'AAAAAAAAAAAAAAAAAAAAAA' })}.AAAA.AAAA.AAAA.AAAA`)
  await refused(t, 'a JWE-looking 5-part token', `${genuine.accessToken}.AAAA.AAAA`)
  await refused(t, 'a 4-part token', `${genuine.accessToken}.AAAA`)
  await refused(t, 'a JSON-serialized JWS', Buffer.from(JSON.stringify({ payload: 'x', signatures: [] })).toString('base64url'))
  await refused(t, 'a header that is not JSON', `${Buffer.from('not json').toString('base64url')}.${genuine.accessToken.split('.')[1]}.AAAA`)
  await refused(t, 'a payload that is not JSON', await new jose.CompactSign(new TextEncoder().encode('not json')).setProtectedHeader(header()).sign(ourKey))
  await refused(t, 'a payload that is a JSON array', await new jose.CompactSign(new TextEncoder().encode('[1,2]')).setProtectedHeader(header()).sign(ourKey))
  await refused(t, 'our refresh token as an access token', genuine.refreshToken)
})

t.test('a Google ID token (another issuer\'s genuine JWT) is not an access token → 401', async (t) => {
  // Run our own code flow against the emulator, as any client of that Google app could.
  const tokens = await googleSdkIdToken(gateway, account)
  t.ok(tokens.idToken, 'the emulator issued an ID token')
  await refused(t, 'a Google ID token', tokens.idToken)
  await refused(t, 'a Google access token', tokens.accessToken)
})

t.test('after logout, the genuine access token is refused', async (t) => {
  const minted = await sign(claims(), header(), ourKey)
  t.equal((await me(minted)).statusCode, 200, 'the minted token works while the session lives')
  t.equal((await me(genuine.accessToken)).statusCode, 200, 'and so does the genuine one')
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: genuine.refreshToken } })
  t.equal(logout.statusCode, 204, 'logout answers 204')
  await refused(t, 'the genuine access token after logout', genuine.accessToken)
  await refused(t, 'a token signed with our key for the ended session', minted)
  const refresh = await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: genuine.refreshToken } })
  t.equal(refresh.statusCode, 401, 'and its refresh token')

  // A new login gives a working token again: the refusals are about the ended session.
  const again = await loginWithGoogle(gateway, account)
  t.equal(again.statusCode, 200, `${again.statusCode >= 300 ? again.body : 'accepted'}`)
  t.equal((await me(again.json().accessToken)).statusCode, 200, 'a new session works')
})
