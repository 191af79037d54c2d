// Our signing keys: the first key signs, every key is published (public parts only) so
// tokens signed before a rotation still verify. Production takes SIGNING_KEYS; development
// generates one key once and keeps it on disk so `kid` stays stable across restarts.

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as jose from 'jose'
import { ConfigError, type Config } from '../config.js'

export const SIGNING_ALGORITHMS = ['ES256', 'EdDSA'] as const
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number]

export interface SigningKey {
  kid: string
  alg: SigningAlgorithm
  privateKey: jose.CryptoKey
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

const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'kid', 'alg', 'use'] as const

export async function loadSigningKeys(config: Pick<Config, 'signingKeys' | 'dataDir' | 'production'>): Promise<SigningKeySet> {
  const source = config.signingKeys
  const jwks = source === undefined ? await loadOrCreateDevelopmentKeys(config.dataDir) : await readKeySource(source)
  const problems: string[] = []
  const keys: SigningKey[] = []
  for (const [index, jwk] of jwks.entries()) {
    const key = await importSigningKey(jwk, index, problems)
    if (key && keys.some((existing) => existing.kid === key.kid)) problems.push(`SIGNING_KEYS: duplicate kid "${key.kid}"`)
    else if (key) keys.push(key)
  }
  if (keys.length === 0 && problems.length === 0) problems.push('SIGNING_KEYS holds no keys')
  if (problems.length > 0) throw new ConfigError(problems)
  return { current: keys[0]!, all: keys, jwks: { keys: keys.map((key) => key.publicJwk) } }
}

async function readKeySource(source: string): Promise<jose.JWK[]> {
  let text = source
  if (!source.trimStart().startsWith('{') && !source.trimStart().startsWith('[')) {
    try {
      text = await readFile(source, 'utf8')
    } catch {
      throw new ConfigError([`SIGNING_KEYS: cannot read the key file "${source}"`])
    }
  }
  try {
    const parsed = JSON.parse(text) as unknown
    const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown }).keys ?? [parsed]
    if (!Array.isArray(keys)) throw new Error('not a JWK set')
    return keys as jose.JWK[]
  } catch {
    throw new ConfigError(['SIGNING_KEYS must be a JWK set ({"keys":[...]}) as JSON or a path to such a file'])
  }
}

async function importSigningKey(jwk: jose.JWK, index: number, problems: string[]): Promise<SigningKey | undefined> {
  const where = `SIGNING_KEYS key #${index + 1}`
  const alg = algorithmFor(jwk)
  if (!alg) {
    problems.push(`${where}: only EC P-256 (ES256) and OKP Ed25519 (EdDSA) keys are accepted`)
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
  try {
    const privateKey = (await jose.importJWK(jwk, alg)) as jose.CryptoKey
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
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  return undefined
}

/** Development only (production refuses a missing SIGNING_KEYS at configuration). */
async function loadOrCreateDevelopmentKeys(dataDir: string): Promise<jose.JWK[]> {
  const file = join(dataDir, 'signing-keys.json')
  try {
    return await readKeySource(await readFile(file, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof ConfigError)) throw error
    if (error instanceof ConfigError) throw new ConfigError([`${file} is not a valid JWK set; delete it to generate a new key`])
  }
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const jwk = await jose.exportJWK(privateKey)
  jwk.kid = await jose.calculateJwkThumbprint(jwk)
  jwk.alg = 'ES256'
  await mkdir(dataDir, { recursive: true })
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, JSON.stringify({ keys: [jwk] }, null, 2), { mode: 0o600 })
  await rename(temporary, file)
  return [jwk]
}
