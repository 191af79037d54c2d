// Bearer authentication for the gateway's own endpoints: a valid access token whose
// session still exists. Checking the session makes logout take effect at once here,
// instead of at token expiry.

import type { FastifyRequest } from 'fastify'
import { InvalidToken } from '../common/errors.js'
import type { RefreshSessions } from '../sessions/refresh-sessions.js'
import type { AccessTokens, VerifiedAccessToken } from '../tokens/access-tokens.js'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: VerifiedAccessToken
  }
}

export function bearerTokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  // RFC 9110 §11.1: the scheme name is case-insensitive.
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(header)
  if (!match) throw new InvalidToken('the Authorization header must be "Bearer <access token>"')
  return match[1]
}

export function requireBearer(accessTokens: AccessTokens, sessions: RefreshSessions) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = bearerTokenOf(request)
    if (token === undefined) throw new InvalidToken('an access token is required')
    const principal = await accessTokens.verify(token)
    if (!(await sessions.isActive(principal.userId, principal.sessionId))) {
      throw new InvalidToken('the session of this access token has ended')
    }
    request.principal = principal
  }
}
