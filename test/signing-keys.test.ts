// Signing keys: development keeps one generated key across restarts; SIGNING_KEYS takes a
// JWK set (JSON or a file); the first key signs, all are published, never a private part.
// ES256 by default; RS256 and EdDSA keys by choice (SIGNING_ALGORITHM, or the key's type).

import { generateKeyPairSync } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as jose from 'jose'
import t from 'tap'
import { ConfigError } from '../src/common/errors.js'
import { AccessTokens } from '../src/tokens/access-tokens.js'
import { loadSigningKeys } from '../src/tokens/signing-keys.js'

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']

async function privateJwk(alg: 'ES256' | 'RS256' | 'EdDSA', kid: string) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true })
  return { ...(await jose.exportJWK(privateKey)), kid, alg }
}

const TOKEN_OPTIONS = { issuer: 'https://gw', audience: 'https://gw', ttlSeconds: 60, appClientId: 'app' }

t.test('development generates one key, keeps it on disk, and reuses it at the next start', async (t) => {
  const dataDir = t.testdir()
  const first = await loadSigningKeys({ dataDir, production: false })
  const second = await loadSigningKeys({ dataDir, production: false })
  t.equal(second.current.kid, first.current.kid, 'the kid is stable across restarts')
  t.equal(first.current.alg, 'ES256')
  const file = join(dataDir, 'signing-keys.json')
  t.equal((await stat(file)).mode & 0o777, 0o600, 'the key file is readable by its owner only')
  t.match(JSON.parse(await readFile(file, 'utf8')).keys[0], { kid: first.current.kid, d: String })
})

t.test('SIGNING_KEYS from a file: the first key signs, every key is published without private parts', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'keys.json')
  await writeFile(file, JSON.stringify({ keys: [await privateJwk('EdDSA', 'new'), await privateJwk('ES256', 'old')] }))
  const keys = await loadSigningKeys({ signingKeys: file, dataDir: dir, production: true })
  t.equal(keys.current.kid, 'new')
  t.same(keys.jwks.keys.map((key) => key.kid), ['new', 'old'])
  for (const key of keys.jwks.keys) {
    for (const member of PRIVATE_MEMBERS) t.notOk(member in key, `${key.kid} has no "${member}"`)
  }
  const issuer = new AccessTokens(keys, TOKEN_OPTIONS)
  const { accessToken } = await issuer.issue({ userId: 'u', sessionId: 's' })
  t.match(jose.decodeProtectedHeader(accessToken), { alg: 'EdDSA', kid: 'new', typ: 'at+jwt' })
})

t.test('after a key rotation, tokens signed by the previous key still verify', async (t) => {
  const oldKey = await privateJwk('ES256', 'old')
  const options = TOKEN_OPTIONS
  const before = new AccessTokens(await loadSigningKeys({ signingKeys: JSON.stringify({ keys: [oldKey] }), dataDir: '', production: true }), options)
  const { accessToken } = await before.issue({ userId: 'u', sessionId: 's' })
  const rotatedKeys = await loadSigningKeys({ signingKeys: JSON.stringify({ keys: [await privateJwk('ES256', 'new'), oldKey] }), dataDir: '', production: true })
  const after = new AccessTokens(rotatedKeys, options)
  t.match(await after.verify(accessToken), { userId: 'u', sessionId: 's' })
  const fresh = await after.issue({ userId: 'u', sessionId: 's' })
  t.equal(jose.decodeProtectedHeader(fresh.accessToken).kid, 'new')
})

t.test('unusable keys stop start-up with a clear problem', async (t) => {
  const { publicKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const p384 = await jose.generateKeyPair('ES384', { extractable: true })
  const cases: [string, string, RegExp][] = [
    ['a public key only', JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'p' }] }), /private key is required/],
    ['an EC P-384 key', JSON.stringify({ keys: [await jose.exportJWK(p384.privateKey)] }), /only EC P-256 \(ES256\), RSA \(RS256\) and OKP Ed25519 \(EdDSA\)/],
    ['a 1024-bit RSA key', JSON.stringify({ keys: [generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'jwk' })] }), /at least 2048 bits \(RFC 7518 §3.3\)/],
    ['an RSA key labelled PS256', JSON.stringify({ keys: [{ ...(await privateJwk('RS256', 'ps')), alg: 'PS256' }] }), /alg "PS256" does not match the key type \(RS256\)/],
    ['not JSON', '{ nope', /must be a JWK set/],
    ['an empty set', '{"keys":[]}', /holds no keys/],
    ['a missing file', '/nonexistent/keys.json', /cannot read the key file/],
  ]
  for (const [name, signingKeys, problem] of cases) {
    await t.rejects(loadSigningKeys({ signingKeys, dataDir: '', production: true }), ConfigError, name)
    const error = await loadSigningKeys({ signingKeys, dataDir: '', production: true }).catch((e: ConfigError) => e)
    t.match((error as ConfigError).problems.join('\n'), problem, name)
  }
})

t.test('an RSA key in SIGNING_KEYS signs RS256 tokens and publishes only n and e', async (t) => {
  const keys = await loadSigningKeys({ signingKeys: JSON.stringify({ keys: [await privateJwk('RS256', 'rsa')] }), dataDir: '', production: true })
  t.equal(keys.current.alg, 'RS256')
  t.same(Object.keys(keys.jwks.keys[0]!).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use'])
  const tokens = new AccessTokens(keys, TOKEN_OPTIONS)
  const { accessToken } = await tokens.issue({ userId: 'u', sessionId: 's' })
  t.match(jose.decodeProtectedHeader(accessToken), { alg: 'RS256', kid: 'rsa', typ: 'at+jwt' })
  t.match(await tokens.verify(accessToken), { userId: 'u', sessionId: 's' })
})

t.test('SIGNING_ALGORITHM picks the generated key type; switching keeps the other key published', async (t) => {
  const dataDir = t.testdir()
  const es256 = await loadSigningKeys({ dataDir, production: false })
  t.equal(es256.current.alg, 'ES256', 'ES256 by default')
  const rs256 = await loadSigningKeys({ dataDir, signingAlgorithm: 'RS256', production: false })
  t.equal(rs256.current.alg, 'RS256')
  t.same(rs256.jwks.keys.map((key) => key.kid), [rs256.current.kid, es256.current.kid], 'the ES256 key stays published: its tokens still verify')
  const again = await loadSigningKeys({ dataDir, signingAlgorithm: 'RS256', production: false })
  t.equal(again.current.kid, rs256.current.kid, 'the RS256 key is kept across restarts')
  const back = await loadSigningKeys({ dataDir, signingAlgorithm: 'ES256', production: false })
  t.same(back.jwks.keys.map((key) => key.kid), [es256.current.kid, rs256.current.kid], 'switching back reuses the ES256 key: no new key each time')
})

t.test('SIGNING_ALGORITHM beside SIGNING_KEYS names what the first key must be', async (t) => {
  const signingKeys = JSON.stringify({ keys: [await privateJwk('ES256', 'ec'), await privateJwk('RS256', 'rsa')] })
  const error = await loadSigningKeys({ signingKeys, signingAlgorithm: 'RS256', dataDir: '', production: true }).catch((e: unknown) => e)
  t.type(error, ConfigError)
  t.same((error as ConfigError).problems, ['SIGNING_ALGORITHM is RS256, but the first key of SIGNING_KEYS is an ES256 key'])
  t.equal((await loadSigningKeys({ signingKeys, signingAlgorithm: 'ES256', dataDir: '', production: true })).current.kid, 'ec')
})
