// Issues the pair a client holds: a refresh token bound to a stored session, and an access
// token naming that session. The session is stored first, so no access token ever exists
// for a session that was not persisted.

import type { AccessTokens } from '../tokens/access-tokens.js'
import type { RefreshSessions, SessionClient } from './refresh-sessions.js'

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
  ) {}

  async startSession(userId: string, client: SessionClient): Promise<TokenSet> {
    return this.withAccessToken(await this.sessions.start(userId, client))
  }

  async refresh(refreshToken: string, client: SessionClient): Promise<TokenSet> {
    return this.withAccessToken(await this.sessions.rotate(refreshToken, client))
  }

  private async withAccessToken(issued: { userId: string; sessionId: string; refreshToken: string; refreshExpiresIn: number }): Promise<TokenSet> {
    const { accessToken, expiresIn } = await this.accessTokens.issue({ userId: issued.userId, sessionId: issued.sessionId })
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
