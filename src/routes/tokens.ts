import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { InvalidGrant, InvalidRequest } from '../common/errors.js'
import { bearerTokenOf } from '../http/bearer.js'
import { clientOf, originOf } from '../http/browser.js'
import { rateLimitedDeletionAs } from '../http/rate-limits.js'
import {
  authenticatedReply,
  BEARER_SECURITY,
  BODY_REFUSALS,
  noContent,
  ORIGIN_REFUSED,
  RATE_LIMITED,
  responses,
  STORAGE_UNAVAILABLE,
  tokenReply,
} from './shapes.js'

const refreshBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { refreshToken: { type: 'string', minLength: 1, maxLength: 512 } },
} as const

const REFRESH_REFUSALS = {
  400: 'invalid_request: the body is not valid, or the refresh cookie arrived twice',
  401: 'invalid_grant: no refresh token, or one that is invalid, expired, revoked or already used (reuse ends the session)',
  ...ORIGIN_REFUSED,
  ...BODY_REFUSALS,
  429: "rate_limited: too many refreshes of this session (RATE_LIMIT_REFRESH); Retry-After says when to try again",
  ...STORAGE_UNAVAILABLE,
} as const

const LOGOUT_REFUSALS = {
  400: 'invalid_request: the body is not valid, or the refresh cookie arrived twice',
  401: 'invalid_token: an Authorization header that is not a valid bearer access token',
  ...ORIGIN_REFUSED,
  ...BODY_REFUSALS,
  ...RATE_LIMITED,
  ...STORAGE_UNAVAILABLE,
} as const

const TAGS = ['sessions']

export async function tokenRoutes(fastify: FastifyInstance, { browser, sessionTokens, sessions, accessTokens, config }: Pick<GatewayServices, 'browser' | 'sessionTokens' | 'sessions' | 'accessTokens' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()

  // Limited per session inside the rotation (RATE_LIMIT_REFRESH), not per address: behind
  // a carrier NAT thousands of phones share one address.
  app.post(
    '/auth/token',
    {
      schema: {
        summary: 'Refresh: new tokens for a refresh token (the body for apps, the HttpOnly cookie for browsers)',
        description: 'The body may be left out when the refresh token is the cookie. Each refresh token is good once: the answer carries its successor.',
        tags: TAGS,
        body: refreshBody,
        response: responses({ 200: tokenReply }, REFRESH_REFUSALS),
      },
    },
    async (request, reply) => {
      const { token, channel } = browser.refreshTokenOf(request, request.body?.refreshToken)
      if (token === undefined) throw new InvalidGrant('a refresh token is required (cookie or body)')
      const tokens = await sessionTokens.refresh(token, clientOf(request, channel))
      return authenticatedReply(browser, reply, tokens, channel)
    },
  )

  // Ends one session: by refresh token (cookie or body), or by the bearer access token.
  app.post(
    '/auth/logout',
    {
      schema: {
        summary: 'End one session: by refresh token (body or cookie), or by the bearer access token',
        description: 'Idempotent: a token whose session already ended ends nothing, and still answers 204. With neither a refresh token nor an access token it ends nothing either.',
        tags: TAGS,
        // Either kind of token, or none: the bearer token is optional here.
        security: [...BEARER_SECURITY, {}],
        body: refreshBody,
        response: responses({ 204: { ...noContent, description: 'the session ended (or there was none); the refresh cookie is cleared' } }, LOGOUT_REFUSALS),
      },
      config: rateLimitedDeletionAs('token', config),
    },
    async (request, reply) => {
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
    },
  )
}
