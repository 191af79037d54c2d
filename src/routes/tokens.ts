import type { FastifyInstance } from 'fastify'
import { InvalidGrant, InvalidRequest } from '../errors.js'
import { bearerTokenOf } from '../http/bearer.js'
import { clientOf, originOf } from '../http/browser.js'
import { rateLimitedDeletionAs } from '../http/rate-limits.js'
import { authenticatedReply } from './shapes.js'

const refreshBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { refreshToken: { type: 'string', minLength: 1, maxLength: 512 } },
} as const

type RefreshBody = { refreshToken?: string } | null | undefined

export async function tokenRoutes(app: FastifyInstance): Promise<void> {
  const { browser, sessionTokens, sessions, accessTokens } = app.gateway

  // Limited per session inside the rotation (RATE_LIMIT_REFRESH), not per address: behind
  // a carrier NAT thousands of phones share one address.
  app.post<{ Body: RefreshBody }>('/auth/token', { schema: { body: refreshBody } }, async (request, reply) => {
    const { token, channel } = browser.refreshTokenOf(request, request.body?.refreshToken)
    if (token === undefined) throw new InvalidGrant('a refresh token is required (cookie or body)')
    const tokens = await sessionTokens.refresh(token, clientOf(request, channel))
    return authenticatedReply(app, reply, tokens, channel)
  })

  // Ends one session: by refresh token (cookie or body), or by the bearer access token.
  app.post<{ Body: RefreshBody }>('/auth/logout', { schema: { body: refreshBody }, config: rateLimitedDeletionAs('token', app.gateway.config) }, async (request, reply) => {
    let presented: ReturnType<typeof browser.refreshTokenOf>
    try {
      presented = browser.refreshTokenOf(request, request.body?.refreshToken)
    } catch (error) {
      // Two refresh cookies (tossed) end no session, but the browser must still be able to shed them.
      if (error instanceof InvalidRequest && browser.isAllowedBrowser(request)) browser.forgetBrowserSession(reply)
      throw error
    }
    const { token, channel } = presented
    if (token !== undefined) {
      await sessions.endByRefreshToken(token, originOf(request))
    } else {
      const bearer = bearerTokenOf(request)
      if (bearer !== undefined) {
        const principal = await accessTokens.verify(bearer)
        await sessions.end(principal.userId, principal.sessionId, 'user', originOf(request))
      }
    }
    if (channel === 'cookie') browser.forgetBrowserSession(reply)
    else browser.clearRefreshCookie(reply)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}
