// Operators' endpoints for machine-to-machine clients and their grants. Registered inside
// the admin plugin (src/routes/admin.ts), which authenticates the admin client first.

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import type { ClientSummary } from '../clients/client-directory.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import {
  ADMIN_SECURITY,
  ADMIN_TAGS,
  adminResponses,
  clientId,
  grantBody,
  grants,
  noContent,
  noQuery,
  operatorOf,
  revokedReply,
  revokeQuery,
  scopesOf,
  WITH_BODY,
  WITH_PATH,
} from './admin-shapes.js'

const clientParams = { type: 'object', required: ['clientId'], properties: { clientId } } as const

const newClientBody = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', minLength: 1, maxLength: 100, description: 'a label for operators, e.g. the service it is for' } },
} as const

const newClientReply = {
  description: 'the new client; its secret is in this answer only (stored hashed, never shown again)',
  type: 'object',
  required: ['clientId', 'clientSecret', 'name'],
  additionalProperties: false,
  properties: { clientId: { type: 'string' }, clientSecret: { type: 'string' }, name: { type: 'string' } },
} as const

const clientList = {
  description: 'every client and its grants, oldest first (never a secret)',
  type: 'object',
  required: ['clients'],
  additionalProperties: false,
  properties: {
    clients: {
      type: 'array',
      items: {
        type: 'object',
        required: ['clientId', 'name', 'createdAt', 'grants'],
        additionalProperties: false,
        properties: { clientId: { type: 'string' }, name: { type: 'string' }, createdAt: { type: 'string', format: 'date-time' }, grants },
      },
    },
  },
} as const

export async function adminClientRoutes(fastify: FastifyInstance, { administration, config }: Pick<GatewayServices, 'administration' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  const limited = { config: rateLimitedAs('token', config) }

  app.post(
    '/admin/clients',
    {
      ...limited,
      schema: { summary: 'Make a machine-to-machine client', tags: ADMIN_TAGS, security: ADMIN_SECURITY, querystring: noQuery, body: newClientBody, response: adminResponses({ 201: newClientReply }, WITH_BODY) },
    },
    async (request, reply) => reply.code(201).send(await administration.createClient(request.body.name, operatorOf(request))),
  )

  app.get(
    '/admin/clients',
    { ...limited, schema: { summary: 'List the clients and their grants', tags: ADMIN_TAGS, security: ADMIN_SECURITY, querystring: noQuery, response: adminResponses({ 200: clientList }) } },
    async (request) => ({ clients: (await administration.listClients(operatorOf(request))).map(clientView) }),
  )

  app.delete(
    '/admin/clients/:clientId',
    {
      ...limited,
      schema: {
        summary: 'Delete a client: its tokens stop working on the admin endpoints at once and it gets no new ones',
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        params: clientParams,
        response: adminResponses({ 204: noContent }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request, reply) => {
      await administration.deleteClient(request.params.clientId, operatorOf(request))
      return reply.code(204).send()
    },
  )

  app.post(
    '/admin/clients/:clientId/grants',
    {
      ...limited,
      schema: {
        summary: 'Let a client ask for these scopes on a resource',
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        querystring: noQuery,
        params: clientParams,
        body: grantBody,
        response: adminResponses({ 204: noContent }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request, reply) => {
      const { resource, scopes } = request.body
      await administration.grantClient(request.params.clientId, resource, scopes, operatorOf(request))
      return reply.code(204).send()
    },
  )

  app.delete(
    '/admin/clients/:clientId/grants',
    {
      ...limited,
      schema: {
        summary: "Take back a client's scopes on a resource",
        tags: ADMIN_TAGS,
        security: ADMIN_SECURITY,
        params: clientParams,
        querystring: revokeQuery,
        response: adminResponses({ 200: revokedReply }, [404, ...WITH_BODY, ...WITH_PATH]),
      },
    },
    async (request) => ({
      revoked: await administration.revokeClient(request.params.clientId, request.query.resource, scopesOf(request.query), operatorOf(request)),
    }),
  )
}

function clientView(client: ClientSummary) {
  return { clientId: client.clientId, name: client.name, createdAt: client.createdAt.toISOString(), grants: client.grants }
}
