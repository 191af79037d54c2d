// Issues the pair a client holds: a refresh token bound to a stored session, and an access
// token naming that session. The session is stored first, so no access token ever exists
// for a session that was not persisted.

import type { AccessTokens } from '../tokens/access-tokens.js'
import { scopeOf, type UserScopes } from '../identity/user-scopes.js'
import type { IssuedRefreshToken, RefreshSessions, SessionClient } from './refresh-sessions.js'

export interface TokenSet {
  accessToken: string
  tokenType: 'Bearer'
  expiresIn: number
  refreshToken: string
  refreshExpiresIn: number
  sessionId: string
}

export class SessionTokens {
  constructor(
    private readonly sessions: RefreshSessions,
    private readonly accessTokens: AccessTokens,
    private readonly scopes: UserScopes,
  ) {}

  /**
   * The scopes are read before the session is stored: a failure leaves nothing behind.
   * `scopes`: what the user's roles grant on the client's resource, when the caller read them
   * from the database with the user (a returning login); the session's own Redis call caches them.
   * `alongside`: the login's own write under way; no token is answered unless it succeeds.
   */
  async startSession(userId: string, client: SessionClient, scopes?: readonly string[], alongside?: Promise<unknown>): Promise<TokenSet> {
    const scope = scopes ? scopeOf(scopes) : await this.scopes.scopeFor(userId, client.resource)
    const cacheScopes = scopes && this.scopes.cacheEntry(client.resource, scopes)
    return this.sessions.start(userId, client, (session) => this.withAccessToken(session, scope), cacheScopes, alongside)
  }

  /** One Redis call when the user's scopes were cached within the last minute: the rotation returns them. */
  async refresh(refreshToken: string, client: SessionClient): Promise<TokenSet> {
    const issued = await this.sessions.rotate(refreshToken, client)
    return this.withAccessToken(issued, await this.scopes.scopeFromCache(issued.userId, issued.resource, issued.cachedScopes ?? ''))
  }

  private async withAccessToken(issued: IssuedRefreshToken, scope: string | undefined): Promise<TokenSet> {
    const { userId, sessionId, resource, authTime } = issued
    const { accessToken, expiresIn } = await this.accessTokens.issue({ userId, sessionId, scope, audience: resource, authTime })
    return {
      accessToken,
      tokenType: 'Bearer',
      expiresIn,
      refreshToken: issued.refreshToken,
      refreshExpiresIn: issued.refreshExpiresIn,
      sessionId: issued.sessionId,
    }
  }
}
