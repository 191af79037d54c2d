// The rules of refresh sessions: start one per login, rotate the refresh token on every
// use, tolerate concurrent refreshes within the grace window, and treat any other
// presentation of a rotated token as theft that ends the whole session.

import { InvalidGrant } from '../errors.js'
import { hashSecret, randomId, sealWith, unsealWith } from '../secrets.js'
import { mintRefreshToken, parseRefreshToken } from './refresh-token.js'
import type { Channel, SessionStore } from './session-store.js'

export type { Channel }

export interface SessionPolicy {
  refreshTokenTtl: number
  sessionMaxAge: number
  refreshReuseGrace: number
  sessionPolicy: 'multi' | 'single'
}

export interface IssuedRefreshToken {
  userId: string
  sessionId: string
  refreshToken: string
  refreshExpiresIn: number
}

const MAX_LABEL_LENGTH = 200

export class RefreshSessions {
  constructor(
    private readonly store: SessionStore,
    private readonly policy: SessionPolicy,
  ) {}

  /** Starts a session for a user who just logged in. Under the single policy, ends the others. */
  async start(userId: string, channel: Channel, label: string): Promise<IssuedRefreshToken> {
    const sessionId = randomId()
    const refreshToken = mintRefreshToken({ userId, sessionId })
    const now = Date.now()
    const ttlMs = this.policy.refreshTokenTtl * 1000
    await this.store.start({
      userId,
      sessionId,
      tokenHash: hashSecret(refreshToken),
      now,
      ttlMs,
      endsAt: now + this.policy.sessionMaxAge * 1000,
      channel,
      label: label.slice(0, MAX_LABEL_LENGTH),
      endOtherSessions: this.policy.sessionPolicy === 'single',
    })
    return { userId, sessionId, refreshToken, refreshExpiresIn: this.policy.refreshTokenTtl }
  }

  /** Exchanges a refresh token for its successor; throws InvalidGrant for anything unusable. */
  async rotate(presented: string, channel: Channel): Promise<IssuedRefreshToken> {
    const parts = parseRefreshToken(presented)
    if (!parts) throw new InvalidGrant('the refresh token is invalid')
    const successor = mintRefreshToken(parts)
    const result = await this.store.rotate({
      ...parts,
      presentedHash: hashSecret(presented),
      successorHash: hashSecret(successor),
      sealedSuccessor: sealWith(presented, successor),
      now: Date.now(),
      graceMs: this.policy.refreshReuseGrace * 1000,
      ttlMs: this.policy.refreshTokenTtl * 1000,
      channel,
    })
    switch (result.outcome) {
      case 'rotated':
        return { ...parts, refreshToken: successor, refreshExpiresIn: Math.floor(result.ttlMs / 1000) }
      case 'grace': {
        const sameSuccessor = unsealWith(presented, result.sealedSuccessor)
        if (!sameSuccessor) throw new InvalidGrant('the refresh token is invalid')
        return { ...parts, refreshToken: sameSuccessor, refreshExpiresIn: Math.floor(result.ttlMs / 1000) }
      }
      case 'reuse':
        throw new InvalidGrant('the refresh token was already used; the session has been ended')
      default:
        throw new InvalidGrant('the refresh token is invalid, expired or revoked')
    }
  }

  /** Ends the session a refresh token belongs to. Unknown tokens end nothing (logout stays idempotent). */
  async endByRefreshToken(presented: string): Promise<void> {
    const parts = parseRefreshToken(presented)
    if (parts) await this.store.end(parts.userId, parts.sessionId, hashSecret(presented))
  }

  async end(userId: string, sessionId: string): Promise<void> {
    await this.store.end(userId, sessionId)
  }

  isActive(userId: string, sessionId: string): Promise<boolean> {
    return this.store.isActive(userId, sessionId)
  }
}
