// The rules of refresh sessions: start one per login, rotate the refresh token on every
// use, answer a lost or raced rotation with the same successor, and treat any other
// presentation of a rotated token as theft that ends the whole session.

import type { AuditLog, RequestOrigin } from '../audit/audit-log.js'
import type { AccountEvents, SessionsRevokedReason } from '../events/account-events.js'
import { InvalidGrant, RateLimited } from '../common/errors.js'
import { randomId, sealWith, unsealWith } from '../common/secrets.js'
import { createHash } from 'node:crypto'
import { composeRefreshToken, familyTag, newFamilyKey, newTokenSecret, parseRefreshToken, type RefreshTokenParts } from './refresh-token.js'
import type { Channel, LiveToken, PresentedToken, SessionStore } from './session-store.js'

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
  /** 0: strict rotation, the predecessor of the live token is reuse too. */
  refreshReuseGrace: number
  sessionPolicy: 'multi' | 'single'
  maxSessionsPerUser: number
  /** Refreshes one session may make per minute (counted in the session, not per address). */
  refreshesPerMinute: number
}

export interface IssuedRefreshToken {
  userId: string
  sessionId: string
  /** The RFC 8707 resource the session's access tokens are for; undefined: the gateway itself. */
  resource?: string
  refreshToken: string
  refreshExpiresIn: number
  /** On a rotation: the user's cached scopes for the resource, as the rotation read them in the same call. */
  cachedScopes?: string
  /** Seconds since the epoch: when the user logged in to start this session (OIDC `auth_time`). */
  authTime: number
}

/**
 * What a session shows of its device: the User-Agent without the tokens every browser
 * sends, cut to 64 bytes so the session's Redis hash keeps its compact encoding
 * (hash-max-listpack-value) and a session stays near 0.5 KB however it is used.
 */
export function deviceLabel(userAgent: string): string {
  const label = userAgent.replace(/Mozilla\/5\.0 |AppleWebKit\/\S+ |\(KHTML, like Gecko\) /g, '').trim()
  let cut = Buffer.from(label).subarray(0, 64).toString()
  // A multi-byte character split by the cut decodes to U+FFFD: drop it.
  if (cut.endsWith('\uFFFD') && !label.startsWith(cut)) cut = cut.slice(0, -1)
  return cut
}

export class RefreshSessions {
  constructor(
    private readonly store: SessionStore,
    private readonly policy: SessionPolicy,
    private readonly audit: AuditLog,
    /** Tells the app (sessions.revoked) when every session of a user ended. */
    private readonly events?: Pick<AccountEvents, 'announce'>,
  ) {}

  /**
   * Starts a session for a user who just logged in. Under the single policy the user's other
   * sessions end; beyond MAX_SESSIONS_PER_USER the least recently used ones do.
   */
  async start(userId: string, client: SessionClient): Promise<IssuedRefreshToken> {
    const { resource } = client
    const sessionId = randomId()
    const secret = newTokenSecret()
    const familyKey = newFamilyKey()
    const single = this.policy.sessionPolicy === 'single'
    const { createdAt, ended } = await this.store.start({
      userId,
      sessionId,
      secretHash: hashOf(secret),
      familyKey,
      ttlMs: this.policy.refreshTokenTtl * 1000,
      maxAgeMs: this.policy.sessionMaxAge * 1000,
      channel: client.channel,
      label: deviceLabel(client.label),
      endOtherSessions: single,
      maxSessions: this.policy.maxSessionsPerUser,
      resource: resource ?? '',
    })
    const origin = originOfClient(client)
    for (const endedId of ended) {
      await this.audit.record({ action: single ? 'session.ended' : 'session.evicted', userId, sessionId: endedId, actor: 'system', outcome: 'success', ...origin })
    }
    await this.audit.record({ action: 'session.started', userId, sessionId, actor: 'user', outcome: 'success', ...origin })
    const refreshToken = composeRefreshToken({ userId, sessionId, generation: 0, secret, tag: familyTag(familyKey, 0) })
    // The session's own creation time, as its refreshes will read it back: one auth_time throughout.
    const authTime = Math.floor(createdAt / 1000)
    return { userId, sessionId, resource, refreshToken, refreshExpiresIn: Math.min(this.policy.refreshTokenTtl, this.policy.sessionMaxAge), authTime }
  }

  /** Exchanges a refresh token for its successor; throws InvalidGrant for anything unusable. */
  async rotate(presented: string, client: SessionClient): Promise<IssuedRefreshToken> {
    const parts = parseRefreshToken(presented)
    if (!parts) {
      this.audit.countRefresh('invalid')
      throw new InvalidGrant('the refresh token is invalid')
    }
    const successorSecret = newTokenSecret()
    const result = await this.store.rotate({
      presented: presentedToken(parts),
      successorHash: hashOf(successorSecret),
      sealedSuccessor: sealWith(parts.secret, successorSecret),
      ttlMs: this.policy.refreshTokenTtl * 1000,
      channel: client.channel,
      strict: this.policy.refreshReuseGrace === 0,
      refreshesPerMinute: this.policy.refreshesPerMinute,
    }).catch(this.audit.countRefreshFailure)
    switch (result.outcome) {
      case 'rotated':
        this.audit.countRefresh('rotated')
        return this.issued(parts, result, successorSecret)
      case 'grace': {
        const sameSuccessor = unsealWith(parts.secret, result.sealedSecret)
        if (!sameSuccessor) throw new InvalidGrant('the refresh token is invalid')
        this.audit.countRefresh('grace')
        return this.issued(parts, result, sameSuccessor)
      }
      case 'limited': {
        this.audit.countRefresh('limited')
        const retryAfter = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
        throw new RateLimited(`too many refreshes of this session; retry after ${retryAfter} s`, { retryAfterSeconds: retryAfter })
      }
      case 'reuse':
        await this.audit.record({ userId: parts.userId, sessionId: parts.sessionId, action: 'session.reuse_detected', actor: 'system', outcome: 'denied', ...originOfClient(client) })
        await this.events?.announce('sessions.revoked', { userId: parts.userId, reason: 'refresh_token_reuse' })
        throw new InvalidGrant('the refresh token was already used; the session has been ended')
      case 'wrong_channel':
      case 'unknown':
        this.audit.countRefresh('invalid')
        throw new InvalidGrant('the refresh token is invalid, expired or revoked')
      default:
        return result satisfies never
    }
  }

  private issued(parts: RefreshTokenParts, live: LiveToken, secret: Buffer): IssuedRefreshToken {
    const { userId, sessionId } = parts
    return {
      userId,
      sessionId,
      resource: live.resource || undefined,
      refreshToken: composeRefreshToken({ userId, sessionId, generation: live.generation, secret, tag: live.tag }),
      refreshExpiresIn: Math.floor(live.ttlMs / 1000),
      cachedScopes: live.cachedScopes,
      authTime: Math.floor(live.createdAt / 1000),
    }
  }

  /** Ends the session a refresh token belongs to. Unknown tokens end nothing (logout stays idempotent). */
  async endByRefreshToken(presented: string, origin: RequestOrigin): Promise<void> {
    const parts = parseRefreshToken(presented)
    if (parts && (await this.store.endByToken(presentedToken(parts)))) {
      await this.audit.record({ userId: parts.userId, sessionId: parts.sessionId, action: 'session.ended', actor: 'user', outcome: 'success', ...origin })
    }
  }

  /** Ends one session of a user; `actor` is who asked (the user, or an operator). */
  async end(userId: string, sessionId: string, actor: string, origin: RequestOrigin): Promise<void> {
    if (await this.store.end(userId, sessionId)) {
      await this.audit.record({ action: 'session.ended', userId, sessionId, actor, outcome: 'success', ...origin })
    }
  }

  /**
   * Ends every session of a user (logout everywhere, forced logout, a provider's revocation).
   * With a `reason` the app hears of it (sessions.revoked); a deleted account is told as user.deleted instead.
   */
  async endAll(userId: string, actor: string, origin: RequestOrigin, reason?: SessionsRevokedReason): Promise<number> {
    const ended = await this.store.endAll(userId)
    await this.audit.record({ action: 'sessions.ended_all', userId, actor, outcome: 'success', ...origin })
    if (reason) await this.events?.announce('sessions.revoked', { userId, reason })
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

/** The stored form of a token secret. */
function hashOf(secret: Buffer): Buffer {
  return createHash('sha256').update(secret).digest()
}

function presentedToken(parts: RefreshTokenParts): PresentedToken {
  const { userId, sessionId, generation, secret, tag } = parts
  return { userId, sessionId, generation, secretHash: hashOf(secret), tag }
}
