// Operator endpoints. Callers authenticate with an admin client's token (see
// src/http/admin-credential.ts), checked before anything else of the request is looked at.

import type { FastifyInstance } from 'fastify'
import { requireAdminClient } from '../http/admin-credential.js'
import { originOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'

const userParams = {
  type: 'object',
  required: ['userId'],
  properties: { userId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
} as const

const auditQuery = {
  type: 'object',
  additionalProperties: false,
  // Query strings are not coerced (see app.ts): a limit is digits, at most 500.
  properties: { limit: { type: 'string', pattern: '^([1-9][0-9]?|[1-4][0-9]{2}|500)$' } },
} as const

type UserParams = { userId: string }

/** For the OpenAPI document: a bearer token (an admin client's). */
const ADMIN_SECURITY = [{ bearer: [] }]

export async function adminRoutes(app: FastifyInstance): Promise<void> {
  const { accessTokens, clients, audit, forcedLogout, auditTrail, config } = app.gateway
  const onlyAdmins = requireAdminClient({ accessTokens, clients, audit, ownResource: config.tokenAudience })
  // preValidation: an unauthenticated caller is refused (audited, or only counted when it shows
  // no genuine token) before its input is looked at.
  const options = { preValidation: onlyAdmins, config: rateLimitedAs('token', config) }

  app.post<{ Params: UserParams }>('/admin/users/:userId/logout', { ...options, schema: { params: userParams, security: ADMIN_SECURITY } }, async (request, reply) => {
    await forcedLogout.ofUser(request.params.userId, `client:${request.adminClient!.clientId}`, originOf(request))
    return reply.code(204).header('cache-control', 'no-store').send()
  })

  app.get<{ Params: UserParams; Querystring: { limit?: string } }>(
    '/admin/users/:userId/audit',
    { ...options, schema: { params: userParams, querystring: auditQuery, security: ADMIN_SECURITY } },
    async (request, reply) => {
      const limit = request.query.limit === undefined ? undefined : Number(request.query.limit)
      const events = await auditTrail.ofUser(request.params.userId, limit)
      return reply.header('cache-control', 'no-store').send({ events })
    },
  )
}
