// HTTP Basic client authentication at the token endpoint (RFC 6749 §2.3.1, RFC 7617):
// `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`. Both parts are
// form-urlencoded before encoding, so a ':' inside an id or a secret survives.

import type { FastifyRequest } from 'fastify'
import type { ClientCredentials } from '../clients/client-directory.js'
import { InvalidClient } from '../errors.js'

/** Far above any id and secret we issue; longer headers are refused before decoding. */
const MAX_HEADER_LENGTH = 1024

/** The client's credentials; undefined when the request has no Authorization header. */
export function basicCredentialsOf(request: FastifyRequest): ClientCredentials | undefined {
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
