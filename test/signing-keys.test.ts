// Signing keys: development keeps one generated key across restarts; SIGNING_KEYS takes a
// JWK set (JSON or a file); the first key signs, all are published, never a private part.

import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as jose from 'jose'
import t from 'tap'
import { ConfigError } from '../src/config.js'
import { AccessTokens } from '../src/tokens/access-tokens.js'
import { loadSigningKeys } from '../src/tokens/signing-keys.js'

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']

async function privateJwk(alg: 'ES256' | 'EdDSA', kid: string) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true })
  return { ...(await jose.exportJWK(privateKey)), kid, alg }
}

t.test('development generates one key, keeps it on disk, and reuses it at the next start', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'gw-keys-'))
  const first = await loadSigningKeys({ dataDir, production: false })
  const second = await loadSigningKeys({ dataDir, production: false })
  t.equal(second.current.kid, first.current.kid, 'the kid is stable across restarts')
  t.equal(first.current.alg, 'ES256')
  const file = join(dataDir, 'signing-keys.json')
  t.equal((await stat(file)).mode & 0o777, 0o600, 'the key file is readable by its owner only')
  t.match(JSON.parse(await readFile(file, 'utf8')).keys[0], { kid: first.current.kid, d: String })
})

t.test('SIGNING_KEYS from a file: the first key signs, every key is published without private parts', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gw-keys-'))
  const file = join(dir, 'keys.json')
  await writeFile(file, JSON.stringify({ keys: [await privateJwk('EdDSA', 'new'), await privateJwk('ES256', 'old')] }))
  const keys = await loadSigningKeys({ signingKeys: file, dataDir: dir, production: true })
  t.equal(keys.current.kid, 'new')
  t.same(keys.jwks.keys.map((key) => key.kid), ['new', 'old'])
  for (const key of keys.jwks.keys) {
    for (const member of PRIVATE_MEMBERS) t.notOk(member in key, `${key.kid} has no "${member}"`)
  }
  const issuer = new AccessTokens(keys, { issuer: 'https://gw', audience: 'https://gw', ttlSeconds: 60 })
  const { accessToken } = await issuer.issue({ userId: 'u', sessionId: 's' })
  t.match(jose.decodeProtectedHeader(accessToken), { alg: 'EdDSA', kid: 'new', typ: 'at+jwt' })
})

t.test('after a key rotation, tokens signed by the previous key still verify', async (t) => {
  const oldKey = await privateJwk('ES256', 'old')
  const options = { issuer: 'https://gw', audience: 'https://gw', ttlSeconds: 60 }
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
  const rsa = await jose.generateKeyPair('RS256', { extractable: true })
  const cases: [string, string, RegExp][] = [
    ['a public key only', JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'p' }] }), /private key is required/],
    ['an RSA key', JSON.stringify({ keys: [await jose.exportJWK(rsa.privateKey)] }), /only EC P-256 \(ES256\) and OKP Ed25519/],
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
