// Schema pieces the admin routes share, and who the operator of a request is.

import type { FastifyRequest } from 'fastify'
import type { Operator } from '../admin/administration.js'
import { originOf } from '../http/browser.js'
import { BEARER_SECURITY, BODY_REFUSALS, PATH_REFUSALS, RATE_LIMITED, responses, type Refusals } from './shapes.js'

export { noContent } from './shapes.js'

/** For the OpenAPI document: a bearer token (an admin client's). */
export const ADMIN_SECURITY = BEARER_SECURITY
export const ADMIN_TAGS = ['admin']

/** The operator behind an admin request: the admin client, from where it called. */
export function operatorOf(request: FastifyRequest): Operator {
  return { actor: `client:${request.adminClient!.clientId}`, origin: originOf(request) }
}

const ERROR_MEANINGS = {
  400: 'invalid_request: the body, query or path is not valid',
  401: 'invalid_token: no admin client token, or not a valid one for the gateway',
  403: 'insufficient_scope: a user token, or a client token without the admin scope',
  404: 'not_found: no such client, role or user',
  409: 'conflict: it exists already',
  ...BODY_REFUSALS,
  ...PATH_REFUSALS,
  ...RATE_LIMITED,
  503: 'unavailable: Redis or the database cannot be reached, or the gateway is shutting down; retry after Retry-After',
} as const satisfies Refusals

/** What an admin route can give besides the refusals every one of them gives. */
export type AdminError = 404 | 409 | 413 | 414 | 415

/** A route with a body (POST) or one that could be sent one (DELETE): 413, 415. */
export const WITH_BODY = [413, 415] as const satisfies readonly AdminError[]
/** A route with path parameters: 414. */
export const WITH_PATH = [414] as const satisfies readonly AdminError[]

/** The answers of an admin route: its own, and the errors it can give (always 400, 401, 403, 429, 503). */
export function adminResponses(own: Record<number, object>, errors: readonly AdminError[] = []) {
  const statuses: (keyof typeof ERROR_MEANINGS)[] = [400, 401, 403, ...errors, 429, 503]
  return responses(own, Object.fromEntries(statuses.map((status) => [status, ERROR_MEANINGS[status]])))
}

/** A route that reads no query: any parameter is an unknown field (400), as in a body. */
export const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const

export const userId = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: "the user's public id (the `sub` of their tokens)" } as const
export const clientId = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const
/** As RoleDirectory checks it; a letter or digit first, so it is a safe path segment. */
export const roleName = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$' } as const
export const resource = {
  type: 'string',
  minLength: 1,
  maxLength: 2048,
  description: 'RFC 8707 resource indicator (an absolute URI without a fragment): the audience of the tokens',
} as const
/** RFC 6749 §3.3 scope-token. */
export const scope = { type: 'string', pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$' } as const

/** Scopes to grant on a resource (to a client or a role); granting twice changes nothing. */
export const grantBody = {
  type: 'object',
  required: ['resource', 'scopes'],
  additionalProperties: false,
  properties: { resource, scopes: { type: 'array', minItems: 1, maxItems: 100, items: scope } },
} as const

/** Scopes to take back; every scope on the resource when `scope` is left out (never when it is empty). */
export const revokeQuery = {
  type: 'object',
  required: ['resource'],
  additionalProperties: false,
  properties: {
    resource,
    scope: {
      type: 'string',
      maxLength: 4096,
      pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+( [\\x21\\x23-\\x5b\\x5d-\\x7e]+)*$',
      description: 'space-separated scopes; leave it out to take back every scope on the resource',
    },
  },
} as const

export type GrantBody = { resource: string; scopes: string[] }
export type RevokeQuery = { resource: string; scope?: string }

export function scopesOf(query: RevokeQuery): string[] {
  return query.scope === undefined ? [] : query.scope.split(' ')
}

export const revokedReply = {
  description: 'how many scopes were taken back (0 when there were none)',
  type: 'object',
  required: ['revoked'],
  additionalProperties: false,
  properties: { revoked: { type: 'integer', minimum: 0 } },
} as const

export const grants = {
  type: 'array',
  items: {
    type: 'object',
    required: ['resource', 'scopes'],
    additionalProperties: false,
    properties: { resource: { type: 'string' }, scopes: { type: 'array', items: { type: 'string' } } },
  },
} as const
