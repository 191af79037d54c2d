// A user's own sessions: see them, end one, end them all. Ending a session takes effect at
// once: its refresh token fails, and its access tokens are refused by every bearer check
// that looks at the session (the gateway's own, and verifiers with revocation on).

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { requireBearer } from '../http/bearer.js'
import { originOf } from '../http/browser.js'
import { BEARER_REFUSED, BEARER_SECURITY, BODY_REFUSALS, noContent, PATH_REFUSALS, responses, STORAGE_UNAVAILABLE, type Refusals } from './shapes.js'

const sessionParams = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' } },
} as const

const sessionList = {
  description: "the caller's live sessions (Cache-Control: no-store)",
  type: 'object',
  required: ['sessions'],
  properties: {
    sessions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'createdAt', 'lastUsedAt', 'client', 'current'],
        properties: {
          id: { type: 'string', description: 'for DELETE /auth/sessions/{sessionId}' },
          createdAt: { type: 'string', format: 'date-time' },
          lastUsedAt: { type: 'string', format: 'date-time' },
          client: { type: 'string', description: 'a label made from the User-Agent it logged in with' },
          current: { type: 'boolean', description: 'the session of the access token that asked' },
        },
      },
    },
  },
} as const

const TAGS = ['sessions']

/** A bearer route's schema: who may call it, what it answers, and how else it refuses. */
const bearerRoute = (summary: string, own: Record<number, object>, refusals: Refusals = {}) => ({
  summary,
  tags: TAGS,
  security: BEARER_SECURITY,
  response: responses(own, { 400: 'invalid_request: the request is malformed', ...BEARER_REFUSED, ...refusals, ...STORAGE_UNAVAILABLE }),
})

const listSchema = bearerRoute("The caller's sessions", { 200: sessionList })
const endOneSchema = {
  ...bearerRoute(
    "End one of the caller's sessions",
    { 204: { ...noContent, description: "ended (or it had already, or it is not the caller's)" } },
    { 400: 'invalid_request: the session id is not valid', ...BODY_REFUSALS, ...PATH_REFUSALS },
  ),
  params: sessionParams,
}
const endAllSchema = bearerRoute(
  'End every session of the caller (logout everywhere)',
  { 204: { ...noContent, description: 'all ended; the refresh cookie is cleared' } },
  BODY_REFUSALS,
)

export async function sessionRoutes(fastify: FastifyInstance, { sessions, accessTokens, browser }: Pick<GatewayServices, 'sessions' | 'accessTokens' | 'browser'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  const bearer = requireBearer(accessTokens, sessions)

  app.get('/auth/sessions', { preHandler: bearer, schema: listSchema }, async (request, reply) => {
    const { userId, sessionId: current } = request.principal!
    const list = await sessions.list(userId)
    return reply.header('cache-control', 'no-store').send({
      sessions: list.map((session) => ({
        id: session.sessionId,
        createdAt: new Date(session.createdAt).toISOString(),
        lastUsedAt: new Date(session.lastUsedAt).toISOString(),
        client: session.label,
        current: session.sessionId === current,
      })),
    })
  })

  // Idempotent: a session that already ended, or is not the caller's, ends nothing.
  app.delete('/auth/sessions/:sessionId', { preHandler: bearer, schema: endOneSchema }, async (request, reply) => {
    await sessions.end(request.principal!.userId, request.params.sessionId, 'user', originOf(request))
    return reply.code(204).send()
  })

  app.post('/auth/logout-all', { preHandler: bearer, schema: endAllSchema }, async (request, reply) => {
    await sessions.endAll(request.principal!.userId, 'user', originOf(request), 'logout_all')
    browser.clearRefreshCookie(reply)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}
