// Provider grants (Apple's refresh token, and the like) are kept only to revoke them when
// the account is deleted, and only encrypted: AES-256-GCM as a compact JWE (alg "dir",
// enc "A256GCM") whose header names the key id, so keys can rotate. ENCRYPTION_KEYS holds
// the keys: the first encrypts, every one decrypts. Development generates one key once
// and keeps it beside the signing keys.

import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import * as jose from 'jose'
import { ConfigError } from '../common/errors.js'
import type { ProviderGrant } from '../../providers/types.js'
import { readJwkSet, writeKeyFile } from '../tokens/key-files.js'

interface EncryptionKey {
  kid: string
  secret: Uint8Array
}

export class GrantVault {
  private readonly byKid: Map<string, Uint8Array>

  constructor(private readonly keys: readonly EncryptionKey[]) {
    this.byKid = new Map(keys.map((key) => [key.kid, key.secret]))
  }

  seal(grant: ProviderGrant): Promise<string> {
    const current = this.keys[0]!
    return new jose.CompactEncrypt(new TextEncoder().encode(JSON.stringify(grant)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: current.kid })
      .encrypt(current.secret)
  }

  /** The grant; throws when its key is gone from ENCRYPTION_KEYS or the text was altered. */
  async open(sealed: string): Promise<ProviderGrant> {
    const { plaintext } = await jose.compactDecrypt(sealed, (header) => {
      const secret = header.kid === undefined ? undefined : this.byKid.get(header.kid)
      if (!secret) throw new Error(`no encryption key with kid "${header.kid}"`)
      return secret
    }, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] })
    return JSON.parse(new TextDecoder().decode(plaintext)) as ProviderGrant
  }
}

export async function loadGrantVault(config: { encryptionKeys?: string; dataDir: string }): Promise<GrantVault> {
  const jwks = config.encryptionKeys === undefined ? await developmentKeys(config.dataDir) : await readJwkSet(config.encryptionKeys, 'ENCRYPTION_KEYS')
  const problems: string[] = []
  const keys: EncryptionKey[] = []
  for (const [index, jwk] of jwks.entries()) {
    const where = `ENCRYPTION_KEYS key #${index + 1}`
    const secret = jwk.kty === 'oct' && typeof jwk.k === 'string' ? Buffer.from(jwk.k, 'base64url') : undefined
    if (!secret || secret.length !== 32) problems.push(`${where}: must be an "oct" key of 256 bits ("k": 32 bytes, base64url)`)
    else if (typeof jwk.kid !== 'string' || jwk.kid === '') problems.push(`${where}: needs a "kid", so sealed tokens find their key after a rotation`)
    else if (keys.some((key) => key.kid === jwk.kid)) problems.push(`${where}: duplicate kid "${jwk.kid}"`)
    else keys.push({ kid: jwk.kid, secret })
  }
  if (keys.length === 0 && problems.length === 0) problems.push('ENCRYPTION_KEYS holds no keys')
  if (problems.length > 0) throw new ConfigError(problems)
  return new GrantVault(keys)
}

/** Development only: production refuses a missing ENCRYPTION_KEYS when a provider grant is kept. */
async function developmentKeys(dataDir: string): Promise<jose.JWK[]> {
  // An in-memory database keeps nothing across restarts, so neither does its key.
  if (dataDir.startsWith('memory://')) return [generatedKey()]
  const file = join(dataDir, 'encryption-keys.json')
  try {
    return await readJwkSet(file, file)
  } catch (error) {
    if (!(error instanceof ConfigError) || !error.problems.some((problem) => problem.includes('cannot read'))) throw error
  }
  const keys = [generatedKey()]
  await writeKeyFile(file, keys)
  return keys
}

function generatedKey(): jose.JWK {
  return { kty: 'oct', k: randomBytes(32).toString('base64url'), kid: `dev-${Date.now().toString(36)}`, alg: 'dir', use: 'enc' }
}
