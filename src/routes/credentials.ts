// The provider credentials POST /auth/login and POST /auth/identities take: their schema,
// and the rule that a request carries exactly one kind, with only the fields of that kind.

import { InvalidRequest } from '../errors.js'
import type { ProviderCredential } from '../login/login.js'
import { providerName, urlString } from './shapes.js'

export const credentialProperties = {
  provider: providerName,
  code: { type: 'string', minLength: 1, maxLength: 2048 },
  redirectUri: urlString,
  state: { type: 'string', minLength: 1, maxLength: 256 },
  // RFC 7636 §4.1: 43 to 128 unreserved characters.
  codeVerifier: { type: 'string', pattern: '^[A-Za-z0-9._~-]{43,128}$' },
  nonce: { type: 'string', minLength: 1, maxLength: 256 },
  idToken: { type: 'string', minLength: 1, maxLength: 8192 },
  accessToken: { type: 'string', minLength: 1, maxLength: 4096 },
} as const

export interface CredentialBody {
  code?: string
  redirectUri?: string
  state?: string
  codeVerifier?: string
  nonce?: string
  idToken?: string
  accessToken?: string
}

export function credentialOf(body: CredentialBody): ProviderCredential {
  const { code, redirectUri, state, codeVerifier, nonce, idToken, accessToken } = body
  if (idToken !== undefined) {
    // A native Apple sign-in brings its authorization code along; the adapter decides whether it may.
    if (accessToken !== undefined || redirectUri !== undefined || state !== undefined || codeVerifier !== undefined) {
      throw new InvalidRequest('send exactly one credential: a code, an idToken or an accessToken (an apple idToken may bring only its nonce and code)')
    }
    return { kind: 'idToken', idToken, nonce, code }
  }
  const kinds = [code, accessToken].filter((value) => value !== undefined).length
  if (kinds !== 1) throw new InvalidRequest('send exactly one credential: a code, an idToken or an accessToken')
  if (accessToken !== undefined) {
    if (redirectUri ?? state ?? codeVerifier ?? nonce) throw new InvalidRequest('an accessToken login takes no other fields')
    return { kind: 'accessToken', accessToken }
  }
  if (redirectUri === undefined) throw new InvalidRequest('a code needs the redirectUri it was issued for')
  if ((state === undefined) === (codeVerifier === undefined)) {
    throw new InvalidRequest('send either the state from /auth/login/start or your own codeVerifier, not both')
  }
  if (state !== undefined && nonce !== undefined) {
    throw new InvalidRequest('the nonce of a gateway-started login is kept by the gateway; do not send one')
  }
  return { kind: 'code', code: code!, redirectUri, state, codeVerifier, nonce }
}
