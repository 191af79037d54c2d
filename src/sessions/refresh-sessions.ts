// The rules of refresh sessions: start one per login, rotate the refresh token on every
// use, tolerate concurrent refreshes within the grace window, and treat any other
// presentation of a rotated token as theft that ends the whole session.

import type { AuditLog, RequestOrigin } from '../audit/audit-log.js'
import { InvalidGrant } from '../errors.js'
import { hashSecret, randomId, sealWith, unsealWith } from '../secrets.js'
import { mintRefreshToken, parseRefreshToken } from './refresh-token.js'
import type { Channel, SessionStore } from './session-store.js'

export type { Channel }

/** The client a session belongs to: where its refresh token travels, a device label, its address. */
export interface SessionClient {
  channel: Channel
  label: string
  ip?: string
  /** RFC 8707: the resource this client wants access tokens for (at login; a session keeps it). */
  resource?: string
}

export interface SessionPolicy {
  refreshTokenTtl: number
  sessionMaxAge: number
  refreshReuseGrace: number
  sessionPolicy: 'multi' | 'single'
}

export interface IssuedRefreshToken {
  userId: string
  sessionId: string
  /** The RFC 8707 resource the session's access tokens are for; undefined: the gateway itself. */
  resource?: string
  refreshToken: string
  refreshExpiresIn: number
}

const MAX_LABEL_LENGTH = 200

export class RefreshSessions {
  constructor(
    private readonly store: SessionStore,
    private readonly policy: SessionPolicy,
    private readonly audit: AuditLog,
  ) {}

  /** Starts a session for a user who just logged in. Under the single policy, ends the others. */
  async start(userId: string, client: SessionClient): Promise<IssuedRefreshToken> {
    const { resource } = client
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
      channel: client.channel,
      label: client.label.slice(0, MAX_LABEL_LENGTH),
      endOtherSessions: this.policy.sessionPolicy === 'single',
      resource: resource ?? '',
    })
    await this.audit.record({ action: 'session.started', userId, sessionId, actor: 'user', outcome: 'success', ...originOfClient(client) })
    return { userId, sessionId, resource, refreshToken, refreshExpiresIn: this.policy.refreshTokenTtl }
  }

  /** Exchanges a refresh token for its successor; throws InvalidGrant for anything unusable. */
  async rotate(presented: string, client: SessionClient): Promise<IssuedRefreshToken> {
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
      channel: client.channel,
    })
    switch (result.outcome) {
      case 'rotated':
        return { ...parts, resource: result.resource || undefined, refreshToken: successor, refreshExpiresIn: Math.floor(result.ttlMs / 1000) }
      case 'grace': {
        const sameSuccessor = unsealWith(presented, result.sealedSuccessor)
        if (!sameSuccessor) throw new InvalidGrant('the refresh token is invalid')
        return { ...parts, resource: result.resource || undefined, refreshToken: sameSuccessor, refreshExpiresIn: Math.floor(result.ttlMs / 1000) }
      }
      case 'reuse':
        await this.audit.record({ ...parts, action: 'session.reuse_detected', actor: 'system', outcome: 'denied', ...originOfClient(client) })
        throw new InvalidGrant('the refresh token was already used; the session has been ended')
      default:
        throw new InvalidGrant('the refresh token is invalid, expired or revoked')
    }
  }

  /** Ends the session a refresh token belongs to. Unknown tokens end nothing (logout stays idempotent). */
  async endByRefreshToken(presented: string, origin: RequestOrigin): Promise<void> {
    const parts = parseRefreshToken(presented)
    if (parts && (await this.store.end(parts.userId, parts.sessionId, hashSecret(presented)))) {
      await this.audit.record({ ...parts, action: 'session.ended', actor: 'user', outcome: 'success', ...origin })
    }
  }

  /** Ends one session of a user; `actor` is who asked (the user, or an operator). */
  async end(userId: string, sessionId: string, actor: string, origin: RequestOrigin): Promise<void> {
    if (await this.store.end(userId, sessionId)) {
      await this.audit.record({ action: 'session.ended', userId, sessionId, actor, outcome: 'success', ...origin })
    }
  }

  /** Ends every session of a user (logout everywhere, forced logout). */
  async endAll(userId: string, actor: string, origin: RequestOrigin): Promise<number> {
    const ended = await this.store.endAll(userId)
    await this.audit.record({ action: 'sessions.ended_all', userId, actor, outcome: 'success', ...origin })
    return ended
  }

  list(userId: string) {
    return this.store.list(userId)
  }

  isActive(userId: string, sessionId: string): Promise<boolean> {
    return this.store.isActive(userId, sessionId)
  }
}

function originOfClient(client: SessionClient): RequestOrigin {
  return { ip: client.ip, userAgent: client.label }
}
