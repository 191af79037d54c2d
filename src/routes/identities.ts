// Several providers on one account: link another identity by proving it with any login
// credential (or, on the web, through the redirect flow), and unlink one. The caller's
// account never changes when the identity belongs to someone else.

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { requireBearer } from '../http/bearer.js'
import { originOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import { CREDENTIAL_RULE, credentialOf, credentialProperties, documentCredentialKinds } from './credentials.js'
import {
  BEARER_REFUSED,
  BEARER_SECURITY,
  BODY_REFUSALS,
  noContent,
  ORIGIN_REFUSED,
  PATH_REFUSALS,
  PROVIDER_FAILED,
  providerName,
  RATE_LIMITED,
  responses,
  STORAGE_UNAVAILABLE,
  urlString,
} from './shapes.js'

const linkBody = {
  description: CREDENTIAL_RULE,
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

const identityList = {
  description: "the caller's identities, the new one included (Cache-Control: no-store)",
  type: 'object',
  required: ['identities'],
  properties: { identities: { type: 'array', items: linkedIdentity } },
} as const

const startedLink = {
  description: 'the provider URL to send the browser to (Cache-Control: no-store)',
  type: 'object',
  required: ['authorizationUrl'],
  properties: { authorizationUrl: { type: 'string' } },
} as const

const LINK_REFUSALS = {
  400: 'invalid_request: the body is not valid, not exactly one credential, or a credential kind the provider does not take; unsupported_provider; invalid_redirect_uri; invalid_state',
  401: `${BEARER_REFUSED[401]}; invalid_grant: the provider refused the credential, or it failed validation`,
  409: 'identity_already_linked: the identity belongs to another account (nothing changes); provider_already_linked: the caller has an identity of that provider',
  ...BODY_REFUSALS,
  ...RATE_LIMITED,
  ...PROVIDER_FAILED,
  ...STORAGE_UNAVAILABLE,
} as const

const START_REFUSALS = {
  400: 'invalid_request: the body is not valid, or returnTo is not an absolute URL on an allowed web origin; unsupported_provider',
  ...BEARER_REFUSED,
  ...ORIGIN_REFUSED,
  ...BODY_REFUSALS,
  ...RATE_LIMITED,
  ...PROVIDER_FAILED,
  ...STORAGE_UNAVAILABLE,
} as const

const UNLINK_REFUSALS = {
  400: 'invalid_request: the identity id is not valid',
  ...BEARER_REFUSED,
  404: "not_found: not one of the caller's identities",
  409: 'last_identity: the only identity of the account cannot be unlinked; link another one first',
  ...BODY_REFUSALS,
  ...PATH_REFUSALS,
  ...STORAGE_UNAVAILABLE,
} as const

const identityParams = {
  type: 'object',
  required: ['identityId'],
  properties: { identityId: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } },
} as const

export async function identityRoutes(fastify: FastifyInstance, { login, links, browser, accessTokens, sessions, config }: Pick<GatewayServices, 'login' | 'links' | 'browser' | 'accessTokens' | 'sessions' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  const bearer = requireBearer(accessTokens, sessions)
  const limited = rateLimitedAs('login', config)

  app.post(
    '/auth/identities',
    {
      preHandler: bearer,
      schema: {
        summary: 'Link another provider identity, proved with any login credential',
        description: '409 identity_already_linked: it belongs to another account (nothing changes); 409 provider_already_linked: the caller has one of that provider.',
        tags: TAGS,
        security: BEARER_SECURITY,
        body: linkBody,
        response: responses({ 201: identityList }, LINK_REFUSALS),
      },
      config: { ...limited, swaggerTransform: documentCredentialKinds },
    },
    async (request, reply) => {
      const { provider, ...credential } = request.body
      const identities = await login.link(request.principal!.userId, provider, credentialOf(credential), originOf(request))
      return reply.code(201).header('cache-control', 'no-store').send({ identities })
    },
  )

  // The web way: the browser goes to the provider, and the callback links the identity to
  // this user. The binding cookie set here ties the flow to this browser as well.
  app.post(
    '/auth/identities/start',
    {
      preHandler: bearer,
      schema: {
        summary: 'Start linking through the redirect flow (web)',
        description: 'The callback links the identity to this user and returns to returnTo with ?linked=<provider> or ?link_error=<code>.',
        tags: TAGS,
        security: BEARER_SECURITY,
        body: startBody,
        response: responses({ 200: startedLink }, START_REFUSALS),
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

  app.delete(
    '/auth/identities/:identityId',
    {
      preHandler: bearer,
      schema: {
        summary: 'Unlink one of the caller\'s identities',
        description: '409 last_identity for the only one; 404 for an id that is not one of the caller\'s.',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: identityParams,
        response: responses({ 204: { ...noContent, description: 'unlinked' } }, UNLINK_REFUSALS),
      },
    },
    async (request, reply) => {
      await links.unlink(request.principal!.userId, request.params.identityId, originOf(request))
      return reply.code(204).send()
    },
  )
}
