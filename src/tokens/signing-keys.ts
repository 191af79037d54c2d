// Our signing keys: the first key signs, every key is published (public parts only) so
// tokens signed before a rotation still verify. Production takes SIGNING_KEYS; development
// generates one key once and keeps it on disk so `kid` stays stable across restarts.
//
// The key type decides the algorithm. ES256 is the default; RS256 is there because some
// verification stacks know no other (fastify-jwt-jwks takes RS256 and EdDSA only,
// jsonwebtoken and get-jwks cannot use Ed25519 keys; docs/verifying-tokens.md has the table).

import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as jose from 'jose'
import { ConfigError } from '../common/errors.js'
import { readJwkSet, writeKeyFile } from './key-files.js'

export const SIGNING_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number]

export interface SigningKey {
  kid: string
  alg: SigningAlgorithm
  /** A node:crypto key: our tokens are signed synchronously (compact-jws.ts says why). */
  privateKey: KeyObject
  /** Built from an allow-list of public members: never carries `d`. */
  publicJwk: jose.JWK
}

export interface SigningKeySet {
  /** Signs new tokens. */
  current: SigningKey
  all: SigningKey[]
  /** The document served at /.well-known/jwks.json. */
  jwks: { keys: jose.JWK[] }
}

/** Where the signing keys come from (SIGNING_KEYS, SIGNING_ALGORITHM; generated under dataDir in development). */
export interface SigningKeySettings {
  /** A JWK set as JSON or a file path; undefined: generate (development only). */
  signingKeys?: string
  signingAlgorithm?: SigningAlgorithm
  dataDir: string
  production: boolean
}

const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use'] as const

/** RFC 7518 §3.3: RSA keys of 2048 bits or more. */
const MIN_RSA_MODULUS_BITS = 2048

export async function loadSigningKeys(config: SigningKeySettings): Promise<SigningKeySet> {
  const source = config.signingKeys
  const jwks = source === undefined ? await loadOrCreateDevelopmentKeys(config.dataDir, config.signingAlgorithm ?? 'ES256') : await readJwkSet(source, 'SIGNING_KEYS')
  const problems: string[] = []
  const keys: SigningKey[] = []
  for (const [index, jwk] of jwks.entries()) {
    const key = await importSigningKey(jwk, index, problems)
    if (key && keys.some((existing) => existing.kid === key.kid)) problems.push(`SIGNING_KEYS: duplicate kid "${key.kid}"`)
    else if (key) keys.push(key)
  }
  if (keys.length === 0 && problems.length === 0) problems.push('SIGNING_KEYS holds no keys')
  // SIGNING_ALGORITHM beside SIGNING_KEYS is a guard: it names what the first key must be.
  const signer = keys[0]
  if (problems.length === 0 && config.signingAlgorithm !== undefined && signer!.alg !== config.signingAlgorithm) {
    problems.push(`SIGNING_ALGORITHM is ${config.signingAlgorithm}, but the first key of SIGNING_KEYS is an ${signer!.alg} key`)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return { current: keys[0]!, all: keys, jwks: { keys: keys.map((key) => key.publicJwk) } }
}

async function importSigningKey(jwk: jose.JWK, index: number, problems: string[]): Promise<SigningKey | undefined> {
  const where = `SIGNING_KEYS key #${index + 1}`
  const alg = algorithmFor(jwk)
  if (!alg) {
    problems.push(`${where}: only EC P-256 (ES256), RSA (RS256) and OKP Ed25519 (EdDSA) keys are accepted`)
    return undefined
  }
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    problems.push(`${where}: alg "${jwk.alg}" does not match the key type (${alg})`)
    return undefined
  }
  if (typeof jwk.d !== 'string') {
    problems.push(`${where}: a private key is required (the "d" member is missing)`)
    return undefined
  }
  if (alg === 'RS256' && rsaModulusBits(jwk) < MIN_RSA_MODULUS_BITS) {
    problems.push(`${where}: an RSA key needs a modulus of at least ${MIN_RSA_MODULUS_BITS} bits (RFC 7518 §3.3)`)
    return undefined
  }
  try {
    const privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
    const kid = jwk.kid ?? (await jose.calculateJwkThumbprint(jwk))
    const publicJwk: jose.JWK = {}
    for (const member of PUBLIC_MEMBERS) {
      if (jwk[member] !== undefined) (publicJwk as Record<string, unknown>)[member] = jwk[member]
    }
    Object.assign(publicJwk, { kid, alg, use: 'sig' })
    return { kid, alg, privateKey, publicJwk }
  } catch {
    problems.push(`${where}: the key cannot be imported`)
    return undefined
  }
}

function algorithmFor(jwk: jose.JWK): SigningAlgorithm | undefined {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256'
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  return undefined
}

function rsaModulusBits(jwk: jose.JWK): number {
  const modulus = typeof jwk.n === 'string' ? Buffer.from(jwk.n, 'base64url') : Buffer.alloc(0)
  const leading = modulus.findIndex((byte) => byte !== 0)
  return leading < 0 ? 0 : (modulus.length - leading) * 8 - Math.clz32(modulus[leading]!) + 24
}

/**
 * Development only (production refuses a missing SIGNING_KEYS at configuration). The file
 * keeps the key of each algorithm used so far: switching SIGNING_ALGORITHM puts that
 * algorithm's key first and keeps the others published, so tokens already out still verify.
 */
async function loadOrCreateDevelopmentKeys(dataDir: string, algorithm: SigningAlgorithm): Promise<jose.JWK[]> {
  const file = join(dataDir, 'signing-keys.json')
  let stored: jose.JWK[] = []
  try {
    stored = await readJwkSet(await readFile(file, 'utf8'), 'SIGNING_KEYS')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof ConfigError)) throw error
    if (error instanceof ConfigError) throw new ConfigError([`${file} is not a valid JWK set; delete it to generate a new key`])
  }
  if (stored.length > 0 && algorithmFor(stored[0]!) === algorithm) return stored
  const kept = stored.find((jwk) => algorithmFor(jwk) === algorithm) ?? (await generatedKey(algorithm))
  const keys = [kept, ...stored.filter((jwk) => jwk !== kept)]
  await writeKeyFile(file, keys)
  return keys
}

async function generatedKey(algorithm: SigningAlgorithm): Promise<jose.JWK> {
  const { privateKey } = await jose.generateKeyPair(algorithm, { extractable: true, ...(algorithm === 'RS256' ? { modulusLength: 2048 } : {}) })
  const jwk = await jose.exportJWK(privateKey)
  jwk.kid = await jose.calculateJwkThumbprint(jwk)
  jwk.alg = algorithm
  return jwk
}
