// The refresh token's wire form, base64url of:
//   user id (16 bytes) ‖ session id (16) ‖ generation (4, big-endian) ‖ secret (32 random) ‖ tag (16)
// The ids put every key of one user in one Redis hash slot and let a malformed token be
// refused without touching Redis. Only a hash of the secret is stored, and only for the
// live token and its predecessor, so a session's size does not grow with its rotations.
// The tag is derived from a key the session keeps (see familyTag): it shows a rotated
// token really came from that session, so reuse of any old token ends the session while a
// forged one carrying a real session id and a guessed generation ends nothing.

import { createHash } from 'node:crypto'
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

export function composeRefreshToken(parts: RefreshTokenParts): string {
  const generation = Buffer.alloc(GENERATION_BYTES)
  generation.writeUInt32BE(parts.generation)
  return Buffer.concat([
    decodeId(parts.userId),
    decodeId(parts.sessionId),
    generation,
    parts.secret,
    Buffer.from(parts.tag, 'hex'),
  ]).toString('base64url')
}

/** Returns undefined for anything that is not a token of ours in form. */
export function parseRefreshToken(token: string): RefreshTokenParts | undefined {
  if (!TOKEN_PATTERN.test(token)) return undefined
  const bytes = Buffer.from(token, 'base64url')
  if (bytes.length !== TOKEN_BYTES) return undefined
  let at = 0
  const take = (length: number) => bytes.subarray(at, (at += length))
  return {
    userId: take(ID_BYTES).toString('base64url'),
    sessionId: take(ID_BYTES).toString('base64url'),
    generation: take(GENERATION_BYTES).readUInt32BE(),
    secret: Buffer.from(take(SECRET_BYTES)),
    tag: take(TAG_BYTES).toString('hex'),
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
  return createHash('sha1').update(`${familyKey}:${generation}`).digest('hex').slice(0, TAG_BYTES * 2)
}

function decodeId(id: string): Buffer {
  const bytes = Buffer.from(id, 'base64url')
  if (bytes.length !== ID_BYTES || bytes.toString('base64url') !== id) throw new Error(`not a 128-bit id: ${id}`)
  return bytes
}
