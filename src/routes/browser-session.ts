// GET /auth/session: whether this browser holds a refresh cookie. The cookie is HttpOnly,
// so a web app's scripts cannot look for it themselves; asking here at start-up, and calling
// POST /auth/token only when there is one, spares a first visit a 401. The cookie's session
// is not checked here: the refresh itself says whether it is still alive.

import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { responses, SHUTTING_DOWN } from './shapes.js'

const sessionState = {
  summary: 'Whether this browser holds a refresh cookie',
  tags: ['sessions'],
  response: responses(
    {
      200: {
        description: 'whether a refresh is worth trying (Cache-Control: no-store)',
        type: 'object',
        required: ['refreshCookie'],
        additionalProperties: false,
        properties: { refreshCookie: { type: 'boolean' } },
      },
    },
    { 400: 'invalid_request: the request is malformed', ...SHUTTING_DOWN },
  ),
} as const

export async function browserSessionRoutes(app: FastifyInstance, { browser }: Pick<GatewayServices, 'browser'>): Promise<void> {

  app.get('/auth/session', { schema: sessionState }, async (request, reply) =>
    reply.header('cache-control', 'no-store').send({ refreshCookie: browser.holdsRefreshCookie(request) }),
  )
}
