// What the gateway publishes about itself, each in its standard's own words:
// - /.well-known/jwks.json: the public keys (RFC 7517).
// - /.well-known/oauth-authorization-server: OAuth 2.0 Authorization Server Metadata (RFC 8414)
//   for the OAuth side, the client_credentials token endpoint and introspection.
// - /.well-known/openid-configuration: the same document at the path OpenID Connect Discovery
//   uses, because many clients look only there (openid-client's discovery() by default). The
//   gateway is not an OpenID Provider: it issues no ID tokens and has no UserInfo endpoint, so
//   the OIDC-only members (subject_types_supported, id_token_signing_alg_values_supported,
//   userinfo_endpoint) are left out rather than filled with something untrue.
// - /auth/providers: the gateway's own, non-standard fact that apps need (which login
//   providers are enabled). Its other endpoints are in the OpenAPI document.

import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { responses, SHUTTING_DOWN } from './shapes.js'

/** Client authentication at the token and introspection endpoints (RFC 6749 §2.3.1; src/http/client-authentication.ts). */
const CLIENT_AUTHENTICATION_METHODS = ['client_secret_basic', 'client_secret_post']

const stringList = { type: 'array', items: { type: 'string' } } as const

const serverMetadata = {
  description: 'RFC 8414 metadata (Cache-Control: public, max-age=300)',
  type: 'object',
  required: ['issuer', 'jwks_uri', 'token_endpoint', 'response_types_supported', 'grant_types_supported'],
  properties: {
    issuer: { type: 'string' },
    jwks_uri: { type: 'string' },
    token_endpoint: { type: 'string' },
    token_endpoint_auth_methods_supported: stringList,
    grant_types_supported: stringList,
    response_types_supported: stringList,
    introspection_endpoint: { type: 'string' },
    introspection_endpoint_auth_methods_supported: stringList,
  },
} as const

/** RFC 7517: the public keys; a key's members depend on its type (EC, RSA or OKP), so others pass through. */
const jwkSet = {
  description: 'the public keys (Cache-Control: public, max-age=300)',
  type: 'object',
  required: ['keys'],
  properties: {
    keys: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kty'],
        additionalProperties: true,
        properties: {
          kty: { type: 'string' },
          kid: { type: 'string' },
          alg: { type: 'string' },
          use: { type: 'string' },
          crv: { type: 'string' },
          x: { type: 'string' },
          y: { type: 'string' },
          n: { type: 'string' },
          e: { type: 'string' },
        },
      },
    },
  },
} as const

const providerList = {
  description: 'the providers /auth/login and the redirect flow take (Cache-Control: public, max-age=300)',
  type: 'object',
  required: ['providers'],
  properties: { providers: stringList },
} as const

/** Served from memory: only a malformed request, or a gateway shutting down, is refused. */
const MEMORY_REFUSALS = { 400: 'invalid_request: the request is malformed', ...SHUTTING_DOWN } as const

const TAGS = ['discovery']

export async function discoveryRoutes(app: FastifyInstance, { config, keys, providers }: Pick<GatewayServices, 'config' | 'keys' | 'providers'>): Promise<void> {
  const base = config.publicUrl

  // Public keys only; served from memory, so it keeps working when Redis or the database is down.
  app.get(
    '/.well-known/jwks.json',
    { schema: { summary: "The gateway's public signing keys (RFC 7517)", tags: TAGS, response: responses({ 200: jwkSet }, MEMORY_REFUSALS) } },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(keys.jwks),
  )

  // Only members that are true of this gateway. The OAuth token endpoint is the
  // machine-to-machine one; users log in and refresh through /auth/*, which is not OAuth.
  const metadata = {
    issuer: base,
    jwks_uri: `${base}/.well-known/jwks.json`,
    token_endpoint: `${base}/oauth/token`,
    token_endpoint_auth_methods_supported: CLIENT_AUTHENTICATION_METHODS,
    grant_types_supported: ['client_credentials'],
    // RFC 8414 §2 requires the member; client_credentials uses no authorization endpoint and
    // so no response type (RFC 7591 §2.1), hence the empty list.
    response_types_supported: [],
    introspection_endpoint: `${base}/oauth/introspect`,
    introspection_endpoint_auth_methods_supported: CLIENT_AUTHENTICATION_METHODS,
  }
  app.get(
    '/.well-known/oauth-authorization-server',
    { schema: { summary: 'OAuth 2.0 Authorization Server Metadata (RFC 8414)', tags: TAGS, response: responses({ 200: serverMetadata }, MEMORY_REFUSALS) } },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(metadata),
  )
  app.get(
    '/.well-known/openid-configuration',
    {
      schema: {
        summary: 'The RFC 8414 metadata, at the path OpenID Connect clients read (the gateway issues no ID tokens)',
        tags: TAGS,
        response: responses({ 200: serverMetadata }, MEMORY_REFUSALS),
      },
    },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(metadata),
  )

  app.get(
    '/auth/providers',
    { schema: { summary: 'The enabled login providers', tags: TAGS, response: responses({ 200: providerList }, MEMORY_REFUSALS) } },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send({ providers: providers.names }),
  )
}
