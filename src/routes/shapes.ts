// Schema pieces and reply shapes that several routes share.

import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Channel } from '../sessions/refresh-sessions.js'
import type { TokenSet } from '../sessions/session-tokens.js'

export const providerName = { type: 'string', minLength: 1, maxLength: 64 } as const
export const urlString = { type: 'string', minLength: 1, maxLength: 2048 } as const

/**
 * The answer to a successful login, signup or refresh (RFC 6749 §5.1: no-store). Browsers
 * get the refresh token only as the HttpOnly cookie, never in the body.
 */
export function authenticatedReply(
  app: FastifyInstance,
  reply: FastifyReply,
  tokens: TokenSet,
  channel: Channel,
  extra: Record<string, unknown> = {},
) {
  const body: Record<string, unknown> = {
    status: 'authenticated',
    accessToken: tokens.accessToken,
    tokenType: tokens.tokenType,
    expiresIn: tokens.expiresIn,
    refreshExpiresIn: tokens.refreshExpiresIn,
    ...extra,
  }
  if (channel === 'cookie') app.gateway.browser.setRefreshCookie(reply, tokens.refreshToken, tokens.refreshExpiresIn)
  else body.refreshToken = tokens.refreshToken
  return reply.header('cache-control', 'no-store').send(body)
}
