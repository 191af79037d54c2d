// Refresh sessions: start one per login (under the single-session policy and the per-user
// cap), list them, and end one, all, or the one a refresh token belongs to. Rotating the
// refresh token on every use, and what a rotated token's reuse means, is one rule read in
// one place: refresh-rotation.ts.

import type { AuditLog, RequestOrigin } from '../audit/audit-log.js'
import type { AccountEvents, SessionsRevokedReason } from '../events/account-events.js'
import { InvalidGrant } from '../common/errors.js'
import { randomId } from '../common/secrets.js'
import { hashOfSecret, originOfClient, type RefreshRotation } from './refresh-rotation.js'
import { composeRefreshToken, familyTag, newFamilyKey, newTokenSecret, parseRefreshToken, type RefreshTokenParts } from './refresh-token.js'
import type { Channel, PresentedToken, SessionStore } from './session-store.js'
import type { ScopeCacheEntry } from '../identity/user-scopes.js'

export type { Channel }

/** Far longer than a login can take between finding its account and starting its session (provider calls are bounded by PROVIDER_HTTP_TIMEOUT). */
const DELETED_ACCOUNT_SECONDS = 3600

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
    private readonly rotation: Pick<RefreshRotation, 'rotate'>,
    private readonly policy: SessionPolicy,
    private readonly audit: AuditLog,
    /** Tells the app (sessions.revoked) when every session of a user ended. */
    private readonly events?: Pick<AccountEvents, 'announce'>,
  ) {}

  /**
   * Starts a session for a user who just logged in. Under the single policy the user's other
   * sessions end; beyond MAX_SESSIONS_PER_USER the least recently used ones do. `answer`
   * makes the client's answer (signs its access token) and the audit row is written while
   * Redis stores the session, so a login waits on the three at once; a session Redis did
   * not confirm is never answered, and its row says it failed. `cacheScopes` are cached in
   * the same Redis call. `alongside`: the login's own write under way (keeping the provider's
   * newest grant), made while the row and the signature are; when it fails, nothing is stored
   * and no token is sent.
   */
  async start<T>(
    userId: string,
    client: SessionClient,
    answer: (session: IssuedRefreshToken) => Promise<T>,
    cacheScopes?: ScopeCacheEntry,
    alongside?: Promise<unknown>,
  ): Promise<T> {
    const { resource } = client
    const sessionId = randomId()
    const secret = newTokenSecret()
    const familyKey = newFamilyKey()
    const single = this.policy.sessionPolicy === 'single'
    // The login's time: the session's creation, as its refreshes read it back for auth_time.
    const createdAt = Date.now()
    const refreshToken = composeRefreshToken({ userId, sessionId, generation: 0, secret, tag: familyTag(familyKey, 0) })
    const session = {
      userId,
      sessionId,
      resource,
      refreshToken,
      refreshExpiresIn: Math.min(this.policy.refreshTokenTtl, this.policy.sessionMaxAge),
      authTime: Math.floor(createdAt / 1000),
    }
    const storeSession = () => this.store.start({
      userId,
      sessionId,
      secretHash: hashOfSecret(secret),
      familyKey,
      createdAt,
      ttlMs: this.policy.refreshTokenTtl * 1000,
      maxAgeMs: this.policy.sessionMaxAge * 1000,
      channel: client.channel,
      label: deviceLabel(client.label),
      endOtherSessions: single,
      maxSessions: this.policy.maxSessionsPerUser,
      resource: resource ?? '',
      cacheScopes,
    })
    // The row is sent first, as the slowest of the three (a database write), then Redis is
    // asked; the signature is made while both work. A write of the login's own under way
    // (`alongside`) must succeed before Redis is asked, though: storing the session may end
    // the user's other sessions, which a login that then fails must not have done.
    const origin = originOfClient(client)
    const audited = this.audit.begin({ action: 'session.started', userId, sessionId, actor: 'user', outcome: 'success', ...origin })
    await audited.sent
    const stored = alongside ? undefined : storeSession()
    const answered = answer(session)
    // Awaited below once the session is stored; dropped unsent (its failure unheard) when it is not.
    answered.catch(() => {})
    if (alongside) {
      try {
        await alongside
      } catch (error) {
        await audited.failed('the login could not be completed; no session was stored and none of its tokens was sent')
        throw error
      }
    }
    let outcome: Awaited<ReturnType<typeof storeSession>>
    try {
      outcome = await (stored ?? storeSession())
    } catch (error) {
      // Not stored, or not confirmed (a stalled Redis may still run it): a session nobody
      // holds a token of runs out by itself.
      await audited.failed('Redis did not confirm the session; none of its tokens was sent')
      throw error
    }
    if (outcome === 'deleted') {
      // The row outlives the account, without where from (as the deletion left the others).
      await audited.failed('the account was deleted while this login was under way', { forgetOrigin: true })
      throw new InvalidGrant('the account was deleted while this login was under way; log in again')
    }
    for (const endedId of outcome.ended) {
      await this.audit.record({ action: single ? 'session.ended' : 'session.evicted', userId, sessionId: endedId, actor: 'system', outcome: 'success', ...origin })
    }
    // The audit never throws (a row it cannot store is logged), so the answer decides the outcome.
    const [result] = await Promise.all([answered, audited.done])
    return result
  }

  /** Exchanges a refresh token for its successor (the rule: refresh-rotation.ts); throws InvalidGrant for anything unusable. */
  rotate(presented: string, client: SessionClient): Promise<IssuedRefreshToken> {
    return this.rotation.rotate(presented, client)
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

  /**
   * The account is deleted: its sessions end, and for an hour no session starts for it, so
   * a login that found the account just before cannot finish with a session of nobody.
   */
  async endForDeletedAccount(userId: string, actor: string): Promise<void> {
    await this.store.endAll(userId, DELETED_ACCOUNT_SECONDS)
    await this.audit.record({ action: 'sessions.ended_all', userId, actor, outcome: 'success' })
  }

  list(userId: string) {
    return this.store.list(userId)
  }

  isActive(userId: string, sessionId: string): Promise<boolean> {
    return this.store.isActive(userId, sessionId)
  }
}

function presentedToken(parts: RefreshTokenParts): PresentedToken {
  const { userId, sessionId, generation, secret, tag } = parts
  return { userId, sessionId, generation, secretHash: hashOfSecret(secret), tag }
}
