// The refresh token's wire form, base64url of:
//   user id (16 bytes) ‖ session id (16) ‖ generation (4, big-endian) ‖ secret (32 random) ‖ tag (16)
// The ids put every key of one user in one Redis hash slot and let a malformed token be
// refused without touching Redis. Only a hash of the secret is stored, and only for the
// live token and its predecessor, so a session's size does not grow with its rotations.
// The tag is derived from a key the session keeps (see familyTag): it shows a rotated
// token really came from that session, so reuse of any old token ends the session while a
// forged one carrying a real session id and a guessed generation ends nothing.

import { hash } from 'node:crypto'
import { secureRandomBytes } from '../common/secrets.js'

const ID_BYTES = 16
const GENERATION_BYTES = 4
const SECRET_BYTES = 32
const TAG_BYTES = 16
const TOKEN_BYTES = ID_BYTES * 2 + GENERATION_BYTES + SECRET_BYTES + TAG_BYTES
const TOKEN_PATTERN = new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((TOKEN_BYTES * 4) / 3)}}$`)

export interface RefreshTokenParts {
  userId: string
  sessionId: string
  generation: number
  secret: Buffer
  /** Hex, as the session's Redis script computes it. */
  tag: string
}

// Offsets of the token's fields, in the order above.
const SESSION_AT = ID_BYTES
const GENERATION_AT = SESSION_AT + ID_BYTES
const SECRET_AT = GENERATION_AT + GENERATION_BYTES
const TAG_AT = SECRET_AT + SECRET_BYTES

// Both run on every refresh: each field is written into, or read out of, the one buffer in place.
export function composeRefreshToken(parts: RefreshTokenParts): string {
  const bytes = Buffer.allocUnsafe(TOKEN_BYTES)
  writeId(bytes, parts.userId, 0)
  writeId(bytes, parts.sessionId, SESSION_AT)
  bytes.writeUInt32BE(parts.generation, GENERATION_AT)
  if (parts.secret.length !== SECRET_BYTES) throw new Error('a refresh token secret is 32 bytes')
  parts.secret.copy(bytes, SECRET_AT)
  if (bytes.write(parts.tag, TAG_AT, 'hex') !== TAG_BYTES || parts.tag.length !== TAG_BYTES * 2) throw new Error('a refresh token tag is 16 bytes of hex')
  return bytes.toString('base64url')
}

/** Returns undefined for anything that is not a token of ours in form. */
export function parseRefreshToken(token: string): RefreshTokenParts | undefined {
  if (!TOKEN_PATTERN.test(token)) return undefined
  const bytes = Buffer.from(token, 'base64url')
  if (bytes.length !== TOKEN_BYTES) return undefined
  return {
    userId: bytes.toString('base64url', 0, SESSION_AT),
    sessionId: bytes.toString('base64url', SESSION_AT, GENERATION_AT),
    generation: bytes.readUInt32BE(GENERATION_AT),
    secret: bytes.subarray(SECRET_AT, TAG_AT),
    tag: bytes.toString('hex', TAG_AT),
  }
}

export function newTokenSecret(): Buffer {
  return secureRandomBytes(SECRET_BYTES)
}

/** A random per-session key for familyTag, as hex (Lua and Node must hash the same text). */
export function newFamilyKey(): string {
  return secureRandomBytes(16).toString('hex')
}

/**
 * The tag of generation `generation` of a session. The same formula runs inside the
 * rotation script (redis.sha1hex), which is why it is SHA-1 and not an HMAC: the input has
 * a fixed shape and the output is truncated, so length extension cannot forge a tag, and
 * the key only ever proves "issued by this session", never grants a live token.
 */
export function familyTag(familyKey: string, generation: number): string {
  return hash('sha1', `${familyKey}:${generation}`, 'hex').slice(0, TAG_BYTES * 2)
}

/** Writes a 128-bit id (base64url, as randomId makes them) at `at`; refuses any other text. */
function writeId(bytes: Buffer, id: string, at: number): void {
  if (bytes.write(id, at, ID_BYTES, 'base64url') !== ID_BYTES || bytes.toString('base64url', at, at + ID_BYTES) !== id) throw new Error(`not a 128-bit id: ${id}`)
}
