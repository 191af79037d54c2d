// A user's own sessions: see them, end one, end them all. Ending a session takes effect at
// once: its refresh token fails, and its access tokens are refused by every bearer check
// that looks at the session (the gateway's own, and verifiers with revocation on).

import type { FastifyInstance } from 'fastify'
import { requireBearer } from '../http/bearer.js'
import { originOf } from '../http/browser.js'

const sessionParams = {
  type: 'object',
  required: ['sessionId'],
  properties: { sessionId: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' } },
} as const

export async function sessionRoutes(app: FastifyInstance): Promise<void> {
  const { sessions, accessTokens } = app.gateway
  const bearer = requireBearer(accessTokens, sessions)

  app.get('/auth/sessions', { preHandler: bearer }, async (request, reply) => {
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
  app.delete<{ Params: { sessionId: string } }>('/auth/sessions/:sessionId', { preHandler: bearer, schema: { params: sessionParams } }, async (request, reply) => {
    await sessions.end(request.principal!.userId, request.params.sessionId, 'user', originOf(request))
    return reply.code(204).send()
  })

  app.post('/auth/logout-all', { preHandler: bearer }, async (request, reply) => {
    await sessions.endAll(request.principal!.userId, 'user', originOf(request), 'logout_all')
    app.gateway.browser.clearRefreshCookie(reply)
    return reply.code(204).header('cache-control', 'no-store').send()
  })
}
