// Random identifiers and secrets, and how secrets are stored: only as hashes.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'

/** 128 random bits, base64url (22 characters): user public ids, session ids. */
export function randomId(): string {
  return randomBytes(16).toString('base64url')
}

/** 256 random bits, base64url: tickets, login state, PKCE verifiers. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url')
}

/** The storage form of a secret: looking it up by hash is a constant-time comparison in effect. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url')
}

/** Encrypts `plaintext` so that only a holder of `secret` can read it (AES-256-GCM): iv ‖ tag ‖ body. */
export function sealWith(secret: Buffer, plaintext: Buffer): Buffer {
  const iv = randomBytes(12)
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
