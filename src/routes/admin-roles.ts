// Operators' endpoints for roles: named sets of scopes on resources, and the users who
// hold them. Registered inside the admin plugin (src/routes/admin.ts), which authenticates
// the admin client first.

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import {
  ADMIN_SECURITY,
  ADMIN_TAGS,
  adminResponses,
  grantBody,
  grants,
  noContent,
  noQuery,
  operatorOf,
  revokedReply,
  revokeQuery,
  roleName,
  scopesOf,
  userId,
  WITH_BODY,
  WITH_PATH,
} from './admin-shapes.js'

const roleParams = { type: 'object', required: ['role'], properties: { role: roleName } } as const
const userParams = { type: 'object', required: ['userId'], properties: { userId } } as const
const assignmentParams = { type: 'object', required: ['userId', 'role'], properties: { userId, role: roleName } } as const

const role = {
  type: 'object',
  required: ['name', 'grants', 'users'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, grants, users: { type: 'integer', minimum: 0, description: 'how many users hold it' } },
} as const

const roleNames = {
  description: "the user's roles, by name",
  type: 'object',
  required: ['roles'],
  additionalProperties: false,
  properties: { roles: { type: 'array', items: { type: 'string' } } },
} as const

const NEW_TOKENS = 'New access tokens carry the change within a minute; tokens already issued keep their scopes until they expire.'

export async function adminRoleRoutes(fastify: FastifyInstance, { administration, config }: Pick<GatewayServices, 'administration' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  const limited = { config: rateLimitedAs('token', config) }

  app.post(
    '/admin/roles',
    {
      ...limited,
      schema: {
        summary: 'Make a role',
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: roleName } },
        response: adminResponses({ 201: { description: 'the new role, without grants or users', ...role } }, [409, ...WITH_BODY]),
      },
    },
    async (request, reply) => reply.code(201).send(await administration.createRole(request.body.name, operatorOf(request))),
  )

  app.get(
    '/admin/roles',
    {
      ...limited,
      schema: {
        summary: 'List the roles, their grants and how many users hold each',
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        response: adminResponses({
          200: { description: 'every role, by name', type: 'object', required: ['roles'], additionalProperties: false, properties: { roles: { type: 'array', items: role } } },
        }),
      },
    },
    async (request) => ({ roles: await administration.listRoles(operatorOf(request)) }),
  )

  app.delete(
    '/admin/roles/:role',
    {
      ...limited,
      schema: {
        summary: 'Delete a role; its users lose its scopes',
        description: NEW_TOKENS,
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        params: roleParams,
        response: adminResponses({ 204: noContent }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request, reply) => {
      await administration.deleteRole(request.params.role, operatorOf(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/admin/roles/:role/grants',
    {
      ...limited,
      schema: {
        summary: 'Let a role grant these scopes on a resource',
        description: NEW_TOKENS,
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        params: roleParams,
        body: grantBody,
        response: adminResponses({ 204: noContent }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request, reply) => {
      const { resource, scopes } = request.body
      await administration.grantRole(request.params.role, resource, scopes, operatorOf(request))
      return reply.code(204).send()
    },
  )

  app.delete(
    '/admin/roles/:role/grants',
    {
      ...limited,
      schema: {
        summary: "Take back a role's scopes on a resource",
        description: NEW_TOKENS,
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        params: roleParams,
        querystring: revokeQuery,
        response: adminResponses({ 200: revokedReply }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request) => ({
      revoked: await administration.revokeRole(request.params.role, request.query.resource, scopesOf(request.query), operatorOf(request)),
    }),
  )

  app.get(
    '/admin/users/:userId/roles',
    {
      ...limited,
      schema: { summary: "A user's roles", tags: ADMIN_TAGS, security: ADMIN_SECURITY, params: userParams, querystring: noQuery, response: adminResponses({ 200: roleNames }, [404, ...WITH_PATH]) },
    },
    async (request) => ({ roles: await administration.rolesOf(request.params.userId, operatorOf(request)) }),
  )

  app.post(
    '/admin/users/:userId/roles',
    {
      ...limited,
      schema: {
        summary: 'Give a user a role (giving it twice changes nothing)',
        description: NEW_TOKENS,
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        params: userParams,
        body: { type: 'object', required: ['role'], additionalProperties: false, properties: { role: roleName } },
        response: adminResponses({ 200: roleNames }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request) => ({ roles: await administration.assignRole(request.params.userId, request.body.role, operatorOf(request)) }),
  )

  app.delete(
    '/admin/users/:userId/roles/:role',
    {
      ...limited,
      schema: {
        summary: 'Take a role from a user (taking one the user does not hold changes nothing)',
        description: NEW_TOKENS,
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        params: assignmentParams,
        response: adminResponses({ 204: noContent }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request, reply) => {
      await administration.unassignRole(request.params.userId, request.params.role, operatorOf(request))
      return reply.code(204).send()
    },
  )
}
