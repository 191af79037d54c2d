// Random identifiers and secrets, and how secrets are stored: only as hashes.

import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto'

const POOL_BYTES = 4096
let pool = Buffer.alloc(0)
let used = 0

/**
 * `size` bytes from the CSPRNG, drawn from a 4 KB block so that a refresh's several small
 * draws cost one call into OpenSSL per ~100 refreshes instead of several per refresh
 * (Node's own randomUUID buffers the same way). Each byte is handed out once, copied out.
 */
export function secureRandomBytes(size: number): Buffer {
  if (size > POOL_BYTES) return randomBytes(size)
  if (used + size > pool.length) {
    pool = randomBytes(POOL_BYTES)
    used = 0
  }
  const drawn = Buffer.from(pool.subarray(used, used + size))
  pool.fill(0, used, used + size)
  used += size
  return drawn
}

/** 128 random bits, base64url (22 characters): user public ids, session ids. */
export function randomId(): string {
  return secureRandomBytes(16).toString('base64url')
}

/** 256 random bits, base64url: tickets, login state, PKCE verifiers. */
export function randomSecret(): string {
  return secureRandomBytes(32).toString('base64url')
}

/** The storage form of a secret: looking it up by hash is a constant-time comparison in effect. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url')
}

/** Whether a presented secret equals the expected one, in time that depends on neither (digests compared). */
export function sameSecret(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest()
  return timingSafeEqual(digest(presented), digest(expected))
}

/** Encrypts `plaintext` so that only a holder of `secret` can read it (AES-256-GCM): iv ‖ tag ‖ body. */
export function sealWith(secret: Buffer, plaintext: Buffer): Buffer {
  const iv = secureRandomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', keyFrom(secret), iv)
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), body])
}

/** Returns undefined when `sealed` was not sealed with `secret` or was altered. */
export function unsealWith(secret: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < 29) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFrom(secret), sealed.subarray(0, 12))
    decipher.setAuthTag(sealed.subarray(12, 28))
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()])
  } catch {
    return undefined
  }
}

function keyFrom(secret: Buffer): Buffer {
  return createHash('sha256').update('seal:').update(secret).digest()
}
