// The refresh token's wire form: base64url of user id (16 bytes) ‖ session id (16 bytes) ‖
// 256 random bits. Carrying the ids lets every key of one user live in one Redis hash slot
// and lets a malformed token be refused without touching Redis. Only the hash is stored.

import { randomBytes } from 'node:crypto'

const ID_BYTES = 16
const SECRET_BYTES = 32
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{86}$/

export interface RefreshTokenParts {
  userId: string
  sessionId: string
}

export function mintRefreshToken(parts: RefreshTokenParts): string {
  return Buffer.concat([
    decodeId(parts.userId),
    decodeId(parts.sessionId),
    randomBytes(SECRET_BYTES),
  ]).toString('base64url')
}

/** Returns undefined for anything that is not a token of ours in form. */
export function parseRefreshToken(token: string): RefreshTokenParts | undefined {
  if (!TOKEN_PATTERN.test(token)) return undefined
  const bytes = Buffer.from(token, 'base64url')
  if (bytes.length !== ID_BYTES * 2 + SECRET_BYTES) return undefined
  return {
    userId: bytes.subarray(0, ID_BYTES).toString('base64url'),
    sessionId: bytes.subarray(ID_BYTES, ID_BYTES * 2).toString('base64url'),
  }
}

function decodeId(id: string): Buffer {
  const bytes = Buffer.from(id, 'base64url')
  if (bytes.length !== ID_BYTES || bytes.toString('base64url') !== id) throw new Error(`not a 128-bit id: ${id}`)
  return bytes
}
