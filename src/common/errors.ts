// Typed failures, thrown where they are detected. Each carries the contract's error
// code; src/http/errors.ts maps codes to HTTP status in one place.

export abstract class GatewayError extends Error {
  abstract readonly code: string
  /** For the operator's log only, never sent to the client (e.g. "check KAKAO_CLIENT_SECRET"). */
  readonly detail?: string
  constructor(message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options)
    this.name = new.target.name
    this.detail = options?.detail
  }
}

export class InvalidRequest extends GatewayError { readonly code = 'invalid_request' }
export class UnsupportedProvider extends GatewayError { readonly code = 'unsupported_provider' }
export class InvalidRedirectUri extends GatewayError { readonly code = 'invalid_redirect_uri' }
export class InvalidState extends GatewayError { readonly code = 'invalid_state' }
/** The provider rejected the code, a provider token failed validation, or our refresh token is not usable. */
export class InvalidGrant extends GatewayError { readonly code = 'invalid_grant' }
export class InvalidSignupToken extends GatewayError { readonly code = 'invalid_signup_token' }
/** A bearer access token that is missing, malformed, forged, expired or whose session ended. */
export class InvalidToken extends GatewayError { readonly code = 'invalid_token' }
/** A sensitive action (deleting the account) needs a login within the last minutes (`auth_time`). */
export class ReauthenticationRequired extends GatewayError { readonly code = 'reauthentication_required' }
export class OriginNotAllowed extends GatewayError { readonly code = 'origin_not_allowed' }
export class IdentityAlreadyLinked extends GatewayError { readonly code = 'identity_already_linked' }
/** The user already holds an identity of this provider (one per provider). */
export class ProviderAlreadyLinked extends GatewayError { readonly code = 'provider_already_linked' }
/** Unlinking would leave the account with no way to log in. */
export class LastIdentity extends GatewayError { readonly code = 'last_identity' }
/** The provider answered with something we cannot use (bad credentials, malformed body, 5xx). */
export class ProviderError extends GatewayError { readonly code = 'provider_error' }
export class ProviderTimeout extends GatewayError { readonly code = 'provider_timeout' }
export class RateLimited extends GatewayError {
  readonly code = 'rate_limited'
  /** Sent as Retry-After. */
  readonly retryAfterSeconds?: number
  constructor(message: string, options?: { retryAfterSeconds?: number }) {
    super(message)
    this.retryAfterSeconds = options?.retryAfterSeconds
  }
}
/** RFC 8707 §2: the requested resource is not one the gateway issues tokens for. */
export class InvalidTarget extends GatewayError { readonly code = 'invalid_target' }
/** RFC 6749 §5.2: client authentication failed (no or malformed credentials, unknown client, wrong secret). */
export class InvalidClient extends GatewayError { readonly code = 'invalid_client' }
export class UnsupportedGrantType extends GatewayError { readonly code = 'unsupported_grant_type' }
/** RFC 6749 §5.2: a malformed scope, or one the client is not granted on the resource. */
export class InvalidScope extends GatewayError { readonly code = 'invalid_scope' }
/** RFC 6750 §3.1: a valid token without the privilege the endpoint needs (`scope` names it). */
export class InsufficientScope extends GatewayError {
  readonly code = 'insufficient_scope'
  constructor(message: string, readonly scope: string) {
    super(message)
  }
}
export class NotFound extends GatewayError { readonly code = 'not_found' }
/** The thing to create exists already (an operator command). */
export class Conflict extends GatewayError { readonly code = 'conflict' }
/** Redis or the database cannot be reached: fail closed with 503, never 401. */
export class StorageUnavailable extends GatewayError { readonly code = 'unavailable' }

/** The environment is not a configuration the gateway can start with: every problem, one line each. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

type ThisModule = typeof import('./errors.js')
/** The code of a concrete GatewayError class (the abstract base's `string` is not one). */
type CodeOf<T> = T extends abstract new (...args: never[]) => infer E ? (E extends GatewayError ? (string extends E['code'] ? never : E['code']) : never) : never
/** Every error code a GatewayError can carry: a map keyed by it must name them all (src/http/errors.ts). */
export type ErrorCode = { [Name in keyof ThisModule]: CodeOf<ThisModule[Name]> }[keyof ThisModule]
