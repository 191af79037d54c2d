// Issues the pair a client holds: a refresh token bound to a stored session, and an access
// token naming that session. The session is stored first, so no access token ever exists
// for a session that was not persisted.

import type { AccessTokens } from '../tokens/access-tokens.js'
import type { Channel, RefreshSessions } from './refresh-sessions.js'

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

  async startSession(userId: string, channel: Channel, label: string): Promise<TokenSet> {
    return this.withAccessToken(await this.sessions.start(userId, channel, label))
  }

  async refresh(refreshToken: string, channel: Channel): Promise<TokenSet> {
    return this.withAccessToken(await this.sessions.rotate(refreshToken, channel))
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
