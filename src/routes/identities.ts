// Several providers on one account: link another identity by proving it with any login
// credential (or, on the web, through the redirect flow), and unlink one. The caller's
// account never changes when the identity belongs to someone else.

import type { FastifyInstance } from 'fastify'
import { requireBearer } from '../http/bearer.js'
import { originOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import { credentialOf, credentialProperties, type CredentialBody } from './credentials.js'
import { providerName, urlString } from './shapes.js'

const linkBody = {
  type: 'object',
  required: ['provider'],
  additionalProperties: false,
  properties: credentialProperties,
} as const

const startBody = {
  type: 'object',
  required: ['provider', 'returnTo'],
  additionalProperties: false,
  properties: { provider: providerName, returnTo: urlString },
} as const

const BEARER = [{ bearer: [] }]
const TAGS = ['identities']

export const linkedIdentity = {
  type: 'object',
  required: ['id', 'provider', 'linkedAt'],
  properties: {
    id: { type: 'string', description: 'opaque id, for DELETE /auth/identities/{identityId}' },
    provider: { type: 'string' },
    linkedAt: { type: 'string', format: 'date-time' },
    email: { type: 'string', description: 'the address the provider vouched for' },
  },
} as const

const identityList = { type: 'object', required: ['identities'], properties: { identities: { type: 'array', items: linkedIdentity } } } as const

const identityParams = {
  type: 'object',
  required: ['identityId'],
  properties: { identityId: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } },
} as const

export async function identityRoutes(app: FastifyInstance): Promise<void> {
  const { login, links, browser, accessTokens, sessions, config } = app.gateway
  const bearer = requireBearer(accessTokens, sessions)
  const limited = rateLimitedAs('login', config)

  app.post<{ Body: CredentialBody & { provider: string } }>(
    '/auth/identities',
    {
      preHandler: bearer,
      schema: {
        summary: 'Link another provider identity, proved with any login credential',
        description: '409 identity_already_linked: it belongs to another account (nothing changes); 409 provider_already_linked: the caller has one of that provider.',
        tags: TAGS,
        security: BEARER,
        body: linkBody,
        response: { 201: identityList },
      },
      config: limited,
    },
    async (request, reply) => {
      const { provider, ...credential } = request.body
      const identities = await login.link(request.principal!.userId, provider, credentialOf(credential), originOf(request))
      return reply.code(201).header('cache-control', 'no-store').send({ identities })
    },
  )

  // The web way: the browser goes to the provider, and the callback links the identity to
  // this user. The binding cookie set here ties the flow to this browser as well.
  app.post<{ Body: { provider: string; returnTo: string } }>(
    '/auth/identities/start',
    {
      preHandler: bearer,
      schema: {
        summary: 'Start linking through the redirect flow (web)',
        description: 'The callback links the identity to this user and returns to returnTo with ?linked=<provider> or ?link_error=<code>.',
        tags: TAGS,
        security: BEARER,
        body: startBody,
        response: { 200: { type: 'object', required: ['authorizationUrl'], properties: { authorizationUrl: { type: 'string' } } } },
      },
      config: limited,
    },
    async (request, reply) => {
      browser.channelOf(request)
      const started = await login.startRedirect(request.body.provider, request.body.returnTo, request.principal!.userId)
      browser.bindFlowToBrowser(reply, started)
      return reply.header('cache-control', 'no-store').send({ authorizationUrl: started.authorizationUrl })
    },
  )

  app.delete<{ Params: { identityId: string } }>(
    '/auth/identities/:identityId',
    {
      preHandler: bearer,
      schema: {
        summary: 'Unlink one of the caller\'s identities',
        description: '409 last_identity for the only one; 404 for an id that is not one of the caller\'s.',
        tags: TAGS,
        security: BEARER,
        params: identityParams,
        response: { 204: { description: 'unlinked', type: 'null' } },
      },
    },
    async (request, reply) => {
      await links.unlink(request.principal!.userId, request.params.identityId, originOf(request))
      return reply.code(204).send()
    },
  )
}
