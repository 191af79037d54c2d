// Schema pieces and reply shapes that several routes share, and the pieces every route
// describes its answers with. A response schema is not only documentation: fastify
// serializes the answer with it, so a field it does not list is dropped from the answer.

import type { FastifyReply } from 'fastify'
import { PROFILE_FIELDS } from '../common/profile-text.js'
import type { BrowserPolicy } from '../http/browser.js'
import type { Channel } from '../sessions/refresh-sessions.js'
import type { TokenSet } from '../sessions/session-tokens.js'

export const providerName = { type: 'string', minLength: 1, maxLength: 64 } as const
export const urlString = { type: 'string', minLength: 1, maxLength: 2048 } as const

/** For the OpenAPI document: the route takes a bearer access token (components.securitySchemes.bearer). */
export const BEARER_SECURITY = [{ bearer: [] }]

/** The body of every refusal (src/http/errors.ts). */
export const errorBody = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', description: 'the error code, e.g. invalid_request' },
    message: { type: 'string', description: 'what went wrong, for people' },
  },
} as const

/** The statuses a refusal can have: the error codes' statuses (src/http/errors.ts) and fastify's own. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 414 | 415 | 429 | 502 | 503 | 504

/** The refusals a route can give, each with what it means there. */
export type Refusals = Partial<Record<ErrorStatus, string>>

/** The answers of a route: its own, and every refusal it can give, each with the error body. */
export function responses(own: Record<number, object>, errors: Refusals, body: object = errorBody): Record<number, object> {
  const refusals = Object.entries(errors).map(([status, description]) => [status, { description, ...body }])
  return { ...own, ...Object.fromEntries(refusals) }
}

// Refusals many routes share. Each route adds its own 400 (and whatever else it has).

/** A body that fastify refuses before any route sees it (any POST or DELETE; src/http/errors.ts). */
export const BODY_REFUSALS = {
  413: 'payload_too_large: the body is larger than the route takes (16 KB for JSON)',
  415: 'unsupported_media_type: the body is not application/json',
} as const satisfies Refusals

/** A path parameter longer than the router takes. */
export const PATH_REFUSALS = { 414: 'uri_too_long: a path segment longer than 100 characters' } as const satisfies Refusals

/** A route with an address budget (src/http/rate-limits.ts). */
export const RATE_LIMITED = {
  429: 'rate_limited: too many requests from this address this minute; Retry-After says when to try again',
} as const satisfies Refusals

/** A route that needs Redis or the database (its rate limit does, at least). */
export const STORAGE_UNAVAILABLE = {
  503: 'unavailable: Redis or the database cannot be reached, or the gateway is shutting down; retry after Retry-After',
} as const satisfies Refusals

/** A route that needs no storage: only a gateway that is shutting down answers 503. */
export const SHUTTING_DOWN = { 503: 'unavailable: the gateway is shutting down' } as const satisfies Refusals

/** A route behind requireBearer (src/http/bearer.ts). */
export const BEARER_REFUSED = {
  401: 'invalid_token: no access token, or one that is malformed, forged, expired or for another audience, or whose session has ended (WWW-Authenticate: Bearer)',
} as const satisfies Refusals

/** A route that calls a login provider. */
export const PROVIDER_FAILED = {
  502: 'provider_error: the provider could not be used or answered with something unusable',
  504: 'provider_timeout: the provider did not answer in time',
} as const satisfies Refusals

/** A browser request from an origin that is not in WEB_ORIGINS (src/http/browser.ts). */
export const ORIGIN_REFUSED = { 403: 'origin_not_allowed: the Origin header names an origin that may not call the gateway' } as const satisfies Refusals

/** A 204: no body. */
export const noContent = { description: 'done', type: 'null' } as const

/** A redirect: no body, the browser follows Location. */
export function redirect(description: string) {
  return { description, type: 'null', headers: { location: { type: 'string', description: 'where the browser goes next' } } } as const
}

/** What clients may see of a user (PublicUser, src/identity/users.ts). */
export const publicUser = {
  type: 'object',
  required: ['id', 'nickname'],
  properties: {
    id: { type: 'string', description: 'the public id, the `sub` of the user\'s access tokens' },
    nickname: { type: 'string' },
    email: { type: 'string' },
    photo: { type: 'string', description: 'an https URL' },
  },
} as const

/** The profile a provider told us, without its subject (what a signup form starts from). */
export const providerProfile = {
  type: 'object',
  properties: { nickname: { type: 'string' }, email: { type: 'string', description: 'only an address the provider vouched for' }, photo: { type: 'string' } },
} as const

/** The profile fields a signup still needs (SIGNUP_REQUIRED_FIELDS). */
export const missingFields = { type: 'array', items: { type: 'string', enum: [...PROFILE_FIELDS] } } as const

const tokenFields = {
  status: { type: 'string', enum: ['authenticated'] },
  accessToken: { type: 'string', description: 'a JWT for the gateway, or for `resource` when the login named one' },
  tokenType: { type: 'string', enum: ['Bearer'] },
  expiresIn: { type: 'integer', description: 'seconds the access token is valid' },
  refreshToken: { type: 'string', description: 'apps only: a browser (a request with an Origin) gets it as an HttpOnly cookie instead' },
  refreshExpiresIn: { type: 'integer', description: 'seconds the refresh token is valid' },
} as const
const TOKEN_FIELDS_REQUIRED = ['status', 'accessToken', 'tokenType', 'expiresIn', 'refreshExpiresIn'] as const

/** authenticatedReply's answer to a refresh. */
export const tokenReply = {
  description: 'new tokens (Cache-Control: no-store)',
  type: 'object',
  required: TOKEN_FIELDS_REQUIRED,
  properties: tokenFields,
} as const

/** authenticatedReply's answer to a login or signup: the tokens, and who logged in. */
export const signedInReply = {
  type: 'object',
  required: [...TOKEN_FIELDS_REQUIRED, 'user', 'isNewUser'],
  properties: { ...tokenFields, user: publicUser, isNewUser: { type: 'boolean' } },
} as const

/**
 * The answer to a successful login, signup or refresh (RFC 6749 §5.1: no-store). Browsers
 * get the refresh token only as the HttpOnly cookie, never in the body.
 */
export function authenticatedReply(
  browser: Pick<BrowserPolicy, 'setRefreshCookie'>,
  reply: FastifyReply,
  tokens: TokenSet,
  channel: Channel,
  extra: Record<string, unknown> = {},
) {
  const body: Record<string, unknown> = {
    status: 'authenticated',
    accessToken: tokens.accessToken,
    tokenType: tokens.tokenType,
    expiresIn: tokens.expiresIn,
    refreshExpiresIn: tokens.refreshExpiresIn,
    ...extra,
  }
  if (channel === 'cookie') browser.setRefreshCookie(reply, tokens.refreshToken, tokens.refreshExpiresIn)
  else body.refreshToken = tokens.refreshToken
  return reply.header('cache-control', 'no-store').send(body)
}
