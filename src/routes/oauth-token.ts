// The OAuth endpoints: POST /oauth/token for machine-to-machine clients (RFC 6749 §4.4,
// client_credentials) and POST /oauth/introspect (RFC 7662). It speaks OAuth: a form-encoded
// body (§4.4.2), client authentication by HTTP Basic or by client_id and client_secret in
// the body (§2.3.1), errors as §5.2 (with our `message` beside `error_description`), and
// no caching of the answer (§5.1).

import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidRequest, InvalidTarget } from '../errors.js'
import { clientCredentialsOf } from '../http/client-authentication.js'
import { rateLimitedAs, rateLimitedPerClient } from '../http/rate-limits.js'

/** A token request is a few short parameters. */
const FORM_BODY_LIMIT = 4 * 1024

/** The parameters the OAuth endpoints read; RFC 6749 §3.2 says to ignore any others. */
const TOKEN_PARAMETERS = ['grant_type', 'scope', 'resource', 'client_id', 'client_secret'] as const
const INTROSPECTION_PARAMETERS = ['token', 'token_type_hint', 'client_id', 'client_secret'] as const

type TokenRequestBody = Partial<Record<(typeof TOKEN_PARAMETERS)[number], string>>
type IntrospectionRequestBody = Partial<Record<(typeof INTROSPECTION_PARAMETERS)[number], string>>

const introspectionRequest = {
  type: 'object',
  required: ['token'],
  additionalProperties: false,
  properties: {
    token: { type: 'string', maxLength: 4096, description: 'the access token to look at' },
    token_type_hint: { type: 'string', maxLength: 64, description: 'access_token (refresh tokens are never active here)' },
    client_id: { type: 'string', maxLength: 256, description: 'client_secret_post: the client id; beside HTTP Basic, optional and must match it' },
    client_secret: { type: 'string', maxLength: 256, description: 'client_secret_post: the client secret, instead of HTTP Basic' },
  },
} as const

const tokenRequest = {
  type: 'object',
  required: ['grant_type'],
  additionalProperties: false,
  properties: {
    grant_type: { type: 'string', maxLength: 128, description: 'client_credentials' },
    scope: { type: 'string', maxLength: 2048, description: 'space-separated; default: every scope the client is granted on the resource' },
    resource: { type: 'string', maxLength: 2048, description: 'RFC 8707 resource indicator, the token audience; default: the gateway itself' },
    client_id: { type: 'string', maxLength: 256, description: 'client_secret_post: the client id; beside HTTP Basic, optional and must match it' },
    client_secret: { type: 'string', maxLength: 256, description: 'client_secret_post: the client secret, instead of HTTP Basic' },
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
    const values = form.getAll(name).filter((value) => value !== '')
    if (values.length > 1) {
      if (name === 'resource') throw new InvalidTarget('ask for one resource per token')
      throw new InvalidRequest(`the parameter ${name} is repeated`)
    }
    if (values.length === 1) {
      if (!VSCHAR.test(values[0])) throw new InvalidRequest(`the parameter ${name} must be printable ASCII (RFC 6749 Appendix A)`)
      parsed[name] = values[0]
    }
  }
  return parsed
}

export async function oauthTokenRoutes(app: FastifyInstance): Promise<void> {
  const { clientCredentials, introspection, config } = app.gateway

  // Only in this plugin: the rest of the gateway stays JSON-only, so a cross-site form
  // still cannot reach it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, async (request: FastifyRequest, body: string) =>
    parseOAuthForm(body, request.url.startsWith('/oauth/introspect') ? INTROSPECTION_PARAMETERS : TOKEN_PARAMETERS),
  )
  app.addContentTypeParser('*', async () => {
    throw new InvalidRequest('send the request as application/x-www-form-urlencoded (RFC 6749 §4.4.2, RFC 7662 §2.1)')
  })

  app.post<{ Body: TokenRequestBody }>(
    '/oauth/token',
    { schema: { body: tokenRequest, consumes: ['application/x-www-form-urlencoded'] }, config: { ...rateLimitedAs('token', config), oauthErrors: true } },
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
  app.post<{ Body: IntrospectionRequestBody }>(
    '/oauth/introspect',
    {
      schema: { body: introspectionRequest, consumes: ['application/x-www-form-urlencoded'] },
      preHandler: async (request: FastifyRequest<{ Body: IntrospectionRequestBody }>) => {
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

