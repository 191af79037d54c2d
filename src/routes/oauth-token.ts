// The OAuth endpoints: POST /oauth/token for machine-to-machine clients (RFC 6749 §4.4,
// client_credentials) and POST /oauth/introspect (RFC 7662). It speaks OAuth: a form-encoded
// body (§4.4.2), client authentication by HTTP Basic or by client_id and client_secret in
// the body (§2.3.1), errors as §5.2 (with our `message` beside `error_description`), and
// no caching of the answer (§5.1).

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { GatewayServices } from '../services.js'
import { InvalidRequest, InvalidTarget } from '../common/errors.js'
import { clientCredentialsOf } from '../http/client-authentication.js'
import { rateLimitedAs, rateLimitedPerClient } from '../http/rate-limits.js'
import { errorBody, responses, STORAGE_UNAVAILABLE } from './shapes.js'

/** A token request is a few short parameters. */
const FORM_BODY_LIMIT = 4 * 1024

/** The parameters the OAuth endpoints read; RFC 6749 §3.2 says to ignore any others. */
const TOKEN_PARAMETERS = ['grant_type', 'scope', 'resource', 'client_id', 'client_secret'] as const
const INTROSPECTION_PARAMETERS = ['token', 'token_type_hint', 'client_id', 'client_secret'] as const

// The schemas see the form as parseOAuthForm leaves it: only the parameters the endpoint
// reads (others are ignored, RFC 6749 §3.2), none of them empty (an empty one counts as left
// out). So no additionalProperties: false, which would say unknown parameters are refused.
const OAUTH_FORM = 'RFC 6749 §3.2: parameters the endpoint does not read are ignored; one sent empty counts as left out, one sent twice (even empty) is refused.'

/** A parameter's value as parseOAuthForm lets it through: VSCHAR (see VSCHAR below). */
const vschar = { type: 'string', pattern: '^[\\x20-\\x7e]*$' } as const

const introspectionRequest = {
  description: OAUTH_FORM,
  type: 'object',
  required: ['token'],
  properties: {
    token: { ...vschar, minLength: 1, maxLength: 4096, description: 'the access token to look at' },
    token_type_hint: { ...vschar, maxLength: 64, description: 'access_token (refresh tokens are never active here)' },
    client_id: { ...vschar, maxLength: 256, description: 'client_secret_post: the client id; beside HTTP Basic, optional and must match it' },
    client_secret: { ...vschar, maxLength: 256, description: 'client_secret_post: the client secret, instead of HTTP Basic' },
  },
} as const

const tokenRequest = {
  description: OAUTH_FORM,
  type: 'object',
  required: ['grant_type'],
  properties: {
    grant_type: { ...vschar, minLength: 1, maxLength: 128, description: 'client_credentials' },
    scope: { ...vschar, maxLength: 2048, description: 'space-separated; default: every scope the client is granted on the resource' },
    resource: { ...vschar, maxLength: 2048, description: 'RFC 8707 resource indicator, the token audience; default: the gateway itself' },
    client_id: { ...vschar, maxLength: 256, description: 'client_secret_post: the client id; beside HTTP Basic, optional and must match it' },
    client_secret: { ...vschar, maxLength: 256, description: 'client_secret_post: the client secret, instead of HTTP Basic' },
  },
} as const

/** RFC 6749 §5.2: the error body, with the text as `error_description` too. */
const oauthErrorBody = {
  ...errorBody,
  properties: { ...errorBody.properties, error_description: { type: 'string', description: 'the same text as message' } },
} as const

/** For the OpenAPI document: client_secret_basic, or (the empty alternative) client_secret_post in the body. */
const CLIENT_AUTHENTICATION: Record<string, string[]>[] = [{ clientSecretBasic: [] }, {}]
const TAGS = ['oauth']

/** What the OAuth endpoints refuse besides their own: the form, the budget, storage. */
const OAUTH_REFUSALS = {
  401: 'invalid_client: no client authentication, an unknown client or a wrong secret (WWW-Authenticate: Basic)',
  413: 'payload_too_large: the form is larger than 4 KB',
  415: 'unsupported_media_type: a Content-Type that is not a media type at all (any other type than a form is a 400)',
  429: 'rate_limited: too many requests this minute; Retry-After says when to try again',
  ...STORAGE_UNAVAILABLE,
} as const

const tokenResponse = {
  description: 'RFC 6749 §5.1 (Cache-Control: no-store)',
  type: 'object',
  required: ['access_token', 'token_type', 'expires_in'],
  properties: {
    access_token: { type: 'string' },
    token_type: { type: 'string', enum: ['Bearer'] },
    expires_in: { type: 'integer' },
    scope: { type: 'string', description: 'the scopes the token carries, space-separated' },
  },
} as const

const introspectionResponse = {
  description: 'RFC 7662 §2.2: `{"active": false}` and nothing more for a token that is not active, or not one the caller may learn about (Cache-Control: no-store)',
  type: 'object',
  required: ['active'],
  properties: {
    active: { type: 'boolean' },
    token_type: { type: 'string', enum: ['Bearer'] },
    sub: { type: 'string' },
    aud: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    iss: { type: 'string' },
    exp: { type: 'integer' },
    iat: { type: 'integer' },
    jti: { type: 'string' },
    scope: { type: 'string' },
    client_id: { type: 'string', description: "a client's token: the client" },
    sid: { type: 'string', description: "a user's token: the session" },
  },
} as const

/** RFC 6749 Appendix A: every value these endpoints read is VSCHAR (or narrower), and a resource is an ASCII URI. */
const VSCHAR = /^[\x20-\x7e]*$/

/**
 * RFC 6749 §3.2: a parameter sent without a value counts as omitted, one sent twice is an
 * invalid request, unknown ones are ignored. RFC 8707 §2 would allow several `resource`s;
 * our tokens have one audience, so that is refused as invalid_target. A value with a
 * character outside VSCHAR (NUL, a control character, non-ASCII) is an invalid request,
 * before it can reach a database that cannot store it.
 */
export function parseOAuthForm<Name extends string>(body: string, names: readonly Name[]): Partial<Record<Name, string>> {
  const form = new URLSearchParams(body)
  const parsed: Partial<Record<Name, string>> = {}
  for (const name of names) {
    // RFC 6749 §3.1: sent more than once is refused, empty or not; sent once empty, left out.
    const values = form.getAll(name)
    if (values.length > 1) {
      if (name === 'resource') throw new InvalidTarget('ask for one resource per token')
      throw new InvalidRequest(`the parameter ${name} is repeated`)
    }
    const value = values[0]
    if (value !== undefined && value !== '') {
      if (!VSCHAR.test(value)) throw new InvalidRequest(`the parameter ${name} must be printable ASCII (RFC 6749 Appendix A)`)
      parsed[name] = value
    }
  }
  return parsed
}

export async function oauthTokenRoutes(fastify: FastifyInstance, { clientCredentials, introspection, config }: Pick<GatewayServices, 'clientCredentials' | 'introspection' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()

  // Only in this plugin: the rest of the gateway stays JSON-only, so a cross-site form
  // still cannot reach it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, async (request: FastifyRequest, body: string) =>
    parseOAuthForm(body, request.url.startsWith('/oauth/introspect') ? INTROSPECTION_PARAMETERS : TOKEN_PARAMETERS),
  )
  app.addContentTypeParser('*', async () => {
    throw new InvalidRequest('send the request as application/x-www-form-urlencoded (RFC 6749 §4.4.2, RFC 7662 §2.1)')
  })

  app.post(
    '/oauth/token',
    {
      schema: {
        summary: 'OAuth 2.0 token endpoint: client_credentials (RFC 6749 §4.4)',
        tags: TAGS,
        security: CLIENT_AUTHENTICATION,
        body: tokenRequest,
        consumes: ['application/x-www-form-urlencoded'],
        response: responses(
          { 200: tokenResponse },
          {
            400: 'invalid_request: the form is not valid, repeats a parameter or is not form-encoded, or two client authentications; unsupported_grant_type; invalid_target: a resource that is not an absolute URI, not granted, or several; invalid_scope: a malformed scope or one not granted',
            ...OAUTH_REFUSALS,
          },
          oauthErrorBody,
        ),
      },
      config: { ...rateLimitedAs('token', config), oauthErrors: true },
    },
    async (request, reply) => {
      const body = request.body
      const credentials = clientCredentialsOf(request, body)
      const token = await clientCredentials.exchange({ credentials, grantType: body.grant_type!, resource: body.resource, scope: body.scope })
      return reply
        .header('cache-control', 'no-store')
        .header('pragma', 'no-cache')
        .send({ access_token: token.accessToken, token_type: 'Bearer', expires_in: token.expiresIn, scope: token.scope })
    },
  )

  // RFC 7662: lets a resource server that does not share the gateway's Redis ask whether an
  // access token meant for it is still active (its session not ended); tokens for resources
  // the client is not granted read as inactive. Verifiers cache the answer briefly.
  // A resource server asks for the requests it serves, so the budget is per client
  // (RATE_LIMIT_INTROSPECTION): the client is authenticated first, then counted; a failed
  // authentication counts against the address and is answered after the count.
  const refusedCallers = new WeakMap<FastifyRequest, unknown>()
  app.post(
    '/oauth/introspect',
    {
      schema: {
        summary: 'OAuth 2.0 token introspection (RFC 7662)',
        tags: TAGS,
        security: CLIENT_AUTHENTICATION,
        body: introspectionRequest,
        consumes: ['application/x-www-form-urlencoded'],
        response: responses(
          { 200: introspectionResponse },
          { 400: 'invalid_request: the form is not valid, repeats a parameter or is not form-encoded, or two client authentications', ...OAUTH_REFUSALS },
          oauthErrorBody,
        ),
      },
      preHandler: async (request) => {
        try {
          request.oauthClient = (await introspection.authenticateCaller(clientCredentialsOf(request, request.body))).clientId
        } catch (error) {
          refusedCallers.set(request, error)
        }
      },
      config: { ...rateLimitedPerClient(config.introspectionsPerMinute, 'token', config), oauthErrors: true },
    },
    async (request, reply) => {
      if (request.oauthClient === undefined) throw refusedCallers.get(request)
      const answer = await introspection.introspect({ clientId: request.oauthClient }, request.body.token!)
      return reply.header('cache-control', 'no-store').send(answer)
    },
  )
}

