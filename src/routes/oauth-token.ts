// POST /oauth/token: the OAuth token endpoint for machine-to-machine clients (RFC 6749
// §4.4, client_credentials). It speaks OAuth: a form-encoded body (§4.4.2), HTTP Basic
// client authentication (§2.3.1), errors as §5.2 (with our `message` beside
// `error_description`), and no caching of the answer (§5.1).

import type { FastifyInstance } from 'fastify'
import { InvalidClient, InvalidRequest, InvalidTarget } from '../errors.js'
import { basicCredentialsOf } from '../http/client-authentication.js'
import { rateLimitedAs } from '../http/rate-limits.js'

/** A token request is a few short parameters. */
const FORM_BODY_LIMIT = 4 * 1024

/** The parameters this endpoint reads; RFC 6749 §3.2 says to ignore any others. */
const TOKEN_PARAMETERS = ['grant_type', 'scope', 'resource', 'client_id', 'client_secret'] as const

type TokenRequestBody = Partial<Record<(typeof TOKEN_PARAMETERS)[number], string>>

const tokenRequest = {
  type: 'object',
  required: ['grant_type'],
  additionalProperties: false,
  properties: {
    grant_type: { type: 'string', maxLength: 128, description: 'client_credentials' },
    scope: { type: 'string', maxLength: 2048, description: 'space-separated; default: every scope the client is granted on the resource' },
    resource: { type: 'string', maxLength: 2048, description: 'RFC 8707 resource indicator, the token audience; default: the gateway itself' },
    client_id: { type: 'string', maxLength: 256, description: 'optional; must match the HTTP Basic client id' },
    client_secret: { type: 'string', maxLength: 256, description: 'refused: send the secret with HTTP Basic' },
  },
} as const

/**
 * RFC 6749 §3.2: a parameter sent without a value counts as omitted, one sent twice is an
 * invalid request, unknown ones are ignored. RFC 8707 §2 would allow several `resource`s;
 * our tokens have one audience, so that is refused as invalid_target.
 */
export function parseTokenRequest(body: string): TokenRequestBody {
  const form = new URLSearchParams(body)
  const parsed: TokenRequestBody = {}
  for (const name of TOKEN_PARAMETERS) {
    const values = form.getAll(name).filter((value) => value !== '')
    if (values.length > 1) {
      if (name === 'resource') throw new InvalidTarget('ask for one resource per token')
      throw new InvalidRequest(`the parameter ${name} is repeated`)
    }
    if (values.length === 1) parsed[name] = values[0]
  }
  return parsed
}

export async function oauthTokenRoutes(app: FastifyInstance): Promise<void> {
  const { clientCredentials, config } = app.gateway

  // Only in this plugin: the rest of the gateway stays JSON-only, so a cross-site form
  // still cannot reach it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, async (_request: unknown, body: string) =>
    parseTokenRequest(body),
  )
  app.addContentTypeParser('*', async () => {
    throw new InvalidRequest('send the token request as application/x-www-form-urlencoded (RFC 6749 §4.4.2)')
  })

  app.post<{ Body: TokenRequestBody }>(
    '/oauth/token',
    { schema: { body: tokenRequest, consumes: ['application/x-www-form-urlencoded'] }, config: { ...rateLimitedAs('token', config), oauthErrors: true } },
    async (request, reply) => {
      const credentials = basicCredentialsOf(request)
      const body = request.body
      // RFC 6749 §2.3.1: one authentication method per request, and we take HTTP Basic only.
      if (body.client_secret !== undefined) throw new InvalidClient('send the client secret with HTTP Basic, not in the body')
      if (credentials !== undefined && body.client_id !== undefined && body.client_id !== credentials.clientId) {
        throw new InvalidRequest('client_id in the body does not match the authenticated client')
      }
      const token = await clientCredentials.exchange({ credentials, grantType: body.grant_type!, resource: body.resource, scope: body.scope })
      return reply
        .header('cache-control', 'no-store')
        .header('pragma', 'no-cache')
        .send({ access_token: token.accessToken, token_type: 'Bearer', expires_in: token.expiresIn, scope: token.scope })
    },
  )
}
