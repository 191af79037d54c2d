// Client authentication at the OAuth endpoints (RFC 6749 §2.3.1), both ways the RFC names:
// - HTTP Basic (client_secret_basic, RFC 7617): `Basic base64(urlencode(client_id) ":"
//   urlencode(client_secret))`. Both parts are form-urlencoded before encoding, so a ':'
//   inside an id or a secret survives.
// - `client_id` and `client_secret` in the form body (client_secret_post), what
//   openid-client and many other libraries send by default.
// One method per request (§2.3): a request carrying both is refused. Either way the secret
// reaches the same constant-time check (ClientDirectory.authenticate).

import type { FastifyRequest } from 'fastify'
import type { ClientCredentials } from '../clients/client-directory.js'
import { InvalidClient, InvalidRequest } from '../common/errors.js'

/** The client authentication parameters of an OAuth form body. */
export interface ClientAuthenticationParameters {
  client_id?: string
  client_secret?: string
}

/** The client's credentials by either method; undefined when the request names no secret at all. */
export function clientCredentialsOf(request: FastifyRequest, body: ClientAuthenticationParameters): ClientCredentials | undefined {
  const basic = basicCredentialsOf(request)
  if (basic !== undefined) {
    if (body.client_secret !== undefined) throw new InvalidRequest('use one client authentication method: HTTP Basic or client_secret in the body, not both (RFC 6749 §2.3)')
    if (body.client_id !== undefined && body.client_id !== basic.clientId) throw new InvalidRequest('client_id in the body does not match the authenticated client')
    return basic
  }
  if (body.client_secret === undefined) return undefined
  if (body.client_id === undefined) throw new InvalidClient('client_secret in the body needs its client_id beside it')
  return { clientId: body.client_id, clientSecret: body.client_secret }
}

/** Far above any id and secret we issue; longer headers are refused before decoding. */
const MAX_HEADER_LENGTH = 1024

/** The client's HTTP Basic credentials; undefined when the request has no Authorization header. */
function basicCredentialsOf(request: FastifyRequest): ClientCredentials | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  // The scheme name is case-insensitive (RFC 9110 §11.1).
  const match = header.length <= MAX_HEADER_LENGTH ? /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header) : null
  if (!match) throw new InvalidClient('the Authorization header must be "Basic <base64 of client_id:client_secret>"')
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) throw new InvalidClient('the Basic credentials must be client_id:client_secret')
  const clientId = formDecoded(decoded.slice(0, colon))
  const clientSecret = formDecoded(decoded.slice(colon + 1))
  if (!clientId || !clientSecret) throw new InvalidClient('the Basic credentials must be client_id:client_secret')
  return { clientId, clientSecret }
}

/** application/x-www-form-urlencoded decoding of one part; undefined when it is not well formed. */
function formDecoded(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}
