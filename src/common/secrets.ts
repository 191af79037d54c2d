// Random identifiers and secrets, and how secrets are stored: only as hashes.

import { createDecipheriv, hash, randomBytes, timingSafeEqual } from 'node:crypto'

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

/**
 * About 128 random bits, base64url (22 characters): user public ids, client ids, session ids.
 * The first character is a letter or digit: an id starting with "-" would read as an option on
 * an operator's command line (`npm run admin -- role:assign -Fe… support`).
 */
export function randomId(): string {
  for (;;) {
    const id = secureRandomBytes(16).toString('base64url')
    if (/^[A-Za-z0-9]/.test(id)) return id
  }
}

/** 256 random bits, base64url: tickets, login state, PKCE verifiers. */
export function randomSecret(): string {
  return secureRandomBytes(32).toString('base64url')
}

/** The storage form of a secret: looking it up by hash is a constant-time comparison in effect. */
export function hashSecret(secret: string): string {
  return hash('sha256', secret, 'base64url')
}

/** The SHA-256 digest's bytes, in one call (no Hash object). */
export function sha256(data: string | Buffer): Buffer {
  // Node 20's typings give hash() a string result whatever the output encoding.
  return hash('sha256', data, 'buffer') as unknown as Buffer
}

/** Whether a presented secret equals the expected one, in time that depends on neither (digests compared). */
export function sameSecret(presented: string, expected: string): boolean {
  return timingSafeEqual(sha256(presented), sha256(expected))
}

/** The length of what sealWith hides: a refresh token's secret. */
const SEALED_BYTES = 32

/**
 * Hides a 32-byte successor secret so that only a holder of `secret` (its predecessor) can
 * recover it: XOR with SHA-256("seal:" ‖ secret). That is a one-time pad, because every
 * secret seals exactly one successor (a refresh token is rotated once), and it costs a tenth
 * of AES-GCM on every refresh. Integrity needs no tag: the rotation script hands the sealed
 * value back only to whoever presents the predecessor's genuine secret.
 */
export function sealWith(secret: Buffer, plaintext: Buffer): Buffer {
  if (plaintext.length !== SEALED_BYTES) throw new RangeError(`sealWith hides ${SEALED_BYTES} bytes, not ${plaintext.length}`)
  return xor(keyFrom(secret), plaintext)
}

/** The secret sealWith hid with `secret`; undefined when `sealed` is no such thing. */
export function unsealWith(secret: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length === SEALED_BYTES) return xor(keyFrom(secret), sealed)
  return unsealLegacy(secret, sealed)
}

/** Sessions rotated by an earlier version hold AES-256-GCM seals (iv ‖ tag ‖ body) until their next rotation. */
function unsealLegacy(secret: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < 29) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFrom(secret), sealed.subarray(0, 12))
    decipher.setAuthTag(sealed.subarray(12, 28))
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()])
  } catch {
    return undefined
  }
}

function xor(pad: Buffer, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length)
  for (let index = 0; index < data.length; index++) out[index] = pad[index]! ^ data[index]!
  return out
}

const SEAL_PREFIX = Buffer.from('seal:')

function keyFrom(secret: Buffer): Buffer {
  return sha256(Buffer.concat([SEAL_PREFIX, secret]))
}
