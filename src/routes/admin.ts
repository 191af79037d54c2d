// Operator endpoints. Callers authenticate with an admin client's token (see
// src/http/admin-credential.ts), checked before anything else of the request is looked at;
// the hook below guards every route of this plugin, those of the route groups it registers
// included. What operators do is audited by src/admin/administration.ts.

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import type { UserRecord } from '../admin/user-lookup.js'
import { NotFound } from '../common/errors.js'
import { requireAdminClient } from '../http/admin-credential.js'
import { originOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import { providerName } from './shapes.js'
import { adminClientRoutes } from './admin-clients.js'
import { adminRoleRoutes } from './admin-roles.js'
import { ADMIN_SECURITY, ADMIN_TAGS, adminResponses, noContent, noQuery, operatorOf, userId, WITH_BODY, WITH_PATH } from './admin-shapes.js'

const userParams = { type: 'object', required: ['userId'], properties: { userId } } as const

/** An operator's action on one user that answers 204, or 404 for an unknown user. */
const userActionSchema = (summary: string) => ({
  summary,
  tags: ADMIN_TAGS,
  security: ADMIN_SECURITY,
  params: userParams,
  querystring: noQuery,
  response: adminResponses({ 204: noContent }, [404, ...WITH_BODY, ...WITH_PATH]),
})

const auditQuery = {
  type: 'object',
  additionalProperties: false,
  // Query strings are not coerced (see app.ts): a limit is digits, at most 500.
  properties: { limit: { type: 'string', pattern: '^([1-9][0-9]?|[1-4][0-9]{2}|500)$' } },
} as const

const userSearchQuery = {
  type: 'object',
  additionalProperties: false,
  description: 'either email, or provider and subject',
  properties: {
    email: { type: 'string', minLength: 1, maxLength: 320, description: 'exact, ignoring case' },
    provider: providerName,
    subject: { type: 'string', minLength: 1, maxLength: 255, description: "the provider's id of the user" },
  },
} as const

const user = {
  type: 'object',
  required: ['id', 'nickname', 'createdAt', 'identities', 'roles'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    nickname: { type: 'string' },
    email: { type: 'string' },
    photo: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    identities: {
      type: 'array',
      items: {
        type: 'object',
        required: ['provider', 'subject', 'linkedAt'],
        additionalProperties: false,
        properties: { provider: { type: 'string' }, subject: { type: 'string' }, linkedAt: { type: 'string', format: 'date-time' } },
      },
    },
    roles: { type: 'array', items: { type: 'string' } },
  },
} as const

const auditEvents = {
  description: "the user's newest events first",
  type: 'object',
  required: ['events'],
  additionalProperties: false,
  properties: {
    events: {
      type: 'array',
      items: {
        type: 'object',
        required: ['at', 'action', 'actor', 'outcome'],
        additionalProperties: false,
        properties: {
          at: { type: 'string', format: 'date-time' },
          action: { type: 'string' },
          sessionId: { type: 'string' },
          actor: { type: 'string' },
          outcome: { type: 'string' },
          ip: { type: 'string' },
          userAgent: { type: 'string' },
          target: { type: 'string' },
          detail: { type: 'string' },
        },
      },
    },
  },
} as const

export async function adminRoutes(fastify: FastifyInstance, { accessTokens, clients, audit, forcedLogout, administration, accountDeletion, config }: Pick<GatewayServices, 'accessTokens' | 'clients' | 'audit' | 'forcedLogout' | 'administration' | 'accountDeletion' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  // preValidation: an unauthenticated caller is refused (audited, or only counted when it shows
  // no genuine token) before its input is looked at.
  app.addHook('preValidation', requireAdminClient({ accessTokens, clients, audit, ownResource: config.tokenAudience }))
  // Secrets, personal data, or both: never kept by a cache on the way.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
  })
  const limited = { config: rateLimitedAs('token', config) }

  app.post(
    '/admin/users/:userId/logout',
    {
      ...limited,
      schema: userActionSchema('Forced logout: every session of the user ends at once'),
    },
    async (request, reply) => {
      await forcedLogout.ofUser(request.params.userId, operatorOf(request).actor, originOf(request))
      return reply.code(204).send()
    },
  )

  app.delete(
    '/admin/users/:userId',
    {
      ...limited,
      schema: userActionSchema('Delete a user: sessions end at once, the account and its identities are gone, provider cleanup follows'),
    },
    async (request, reply) => {
      if (!(await accountDeletion.delete(request.params.userId, operatorOf(request).actor))) {
        throw new NotFound(`no user "${request.params.userId}"`)
      }
      return reply.code(204).send()
    },
  )

  app.get(
    '/admin/users/:userId/audit',
    {
      ...limited,
      schema: {
        summary: "A user's audit trail",
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        params: userParams,
        querystring: auditQuery,
        response: adminResponses({ 200: auditEvents }, [404, ...WITH_PATH]),
      },
    },
    async (request) => {
      const limit = request.query.limit === undefined ? undefined : Number(request.query.limit)
      return { events: await administration.auditTrailOf(request.params.userId, limit, operatorOf(request)) }
    },
  )

  app.get(
    '/admin/users',
    {
      ...limited,
      schema: {
        summary: 'Find users by email, or by provider and subject',
        description: 'An empty list when nobody matches. An email may match several users.',
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: userSearchQuery,
        response: adminResponses({
          200: { description: 'the users that match, oldest first', type: 'object', required: ['users'], additionalProperties: false, properties: { users: { type: 'array', items: user } } },
        }),
      },
    },
    async (request) => ({ users: (await administration.findUsers(request.query, operatorOf(request))).map(userView) }),
  )

  app.get(
    '/admin/users/:userId',
    {
      ...limited,
      schema: {
        summary: 'A user, with identities and roles',
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        params: userParams,
        querystring: noQuery,
        response: adminResponses({ 200: { description: 'the user', ...user } }, [404, ...WITH_PATH]),
      },
    },
    async (request) => userView(await administration.user(request.params.userId, operatorOf(request))),
  )

  await app.register(adminClientRoutes, { administration, config })
  await app.register(adminRoleRoutes, { administration, config })
}

function userView(record: UserRecord) {
  return {
    ...record,
    createdAt: record.createdAt.toISOString(),
    identities: record.identities.map((identity) => ({ ...identity, linkedAt: identity.linkedAt.toISOString() })),
  }
}
