// The provider credentials POST /auth/login and POST /auth/identities take: their schema,
// and the rule that a request carries exactly one kind, with only the fields of that kind.

import type { SwaggerTransform } from '@fastify/swagger'
import type { FromSchema } from 'json-schema-to-ts'
import { InvalidRequest } from '../common/errors.js'
import type { ProviderCredential } from '../login/login.js'
import { providerName, urlString } from './shapes.js'

/** credentialOf's rule in words, for the OpenAPI document. */
export const CREDENTIAL_RULE =
  'Exactly one credential: a `code` with the `redirectUri` it was issued for and either the `state` from POST /auth/login/start or the app\'s own `codeVerifier` (and its `nonce`, if any); ' +
  'an `idToken` with its `nonce`, if any (Apple\'s may bring its authorization `code`); or an `accessToken` alone. Any other combination is a 400 invalid_request.'

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

const present = (names: string[]) => names.map((name) => ({ required: [name] }))
/** None of these fields. */
const without = (...names: string[]) => ({ not: { anyOf: present(names) } })

/** credentialOf's rule as JSON Schema: exactly one of these kinds, each with only its own fields. */
const credentialKinds = [
  { title: 'a code, with the state from POST /auth/login/start', required: ['code', 'redirectUri', 'state'], ...without('codeVerifier', 'nonce', 'idToken', 'accessToken') },
  { title: "a code, with the app's own PKCE verifier", required: ['code', 'redirectUri', 'codeVerifier'], ...without('state', 'idToken', 'accessToken') },
  { title: 'an ID token', required: ['idToken'], ...without('accessToken', 'redirectUri', 'state', 'codeVerifier') },
  { title: 'an access token', required: ['accessToken'], ...without('code', 'idToken', 'redirectUri', 'state', 'codeVerifier', 'nonce') },
]

/**
 * For the OpenAPI document only (a route's `config.swaggerTransform`): the body says which
 * fields go together. Fastify validates the body without it, so a request that breaks the
 * rule is refused by credentialOf, with its own message; test/openapi.test.ts holds the two
 * to each other.
 */
export const documentCredentialKinds: SwaggerTransform = ({ schema, url }) => ({
  url,
  schema: { ...schema, body: { ...(schema.body as object), oneOf: credentialKinds } },
})

const credentialFields = { type: 'object', properties: credentialProperties, additionalProperties: false } as const
/** The credential fields of a login or link body, as their schema types them. */
export type CredentialBody = Omit<FromSchema<typeof credentialFields>, 'provider'>

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
