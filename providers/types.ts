// The one interface every identity provider adapter implements. Routes and domain
// modules see only this; provider quirks (Kakao's 64-bit ids, Naver's HTTP-200
// errors, Google's issuer) stay inside each adapter.

import type { ProviderCallObserver } from './provider-http.js'

/** What we learn about a person from a provider, already normalised. */
export interface ProviderProfile {
  /** The provider's stable subject, always a string: Kakao ids exceed 2^53. */
  subject: string
  /** Present only when the provider vouches for it (verified). */
  email?: string
  nickname?: string
  /** An https URL. */
  photo?: string
  /**
   * Provider tokens the gateway keeps (encrypted) for one purpose only: revoking the grant
   * when the account is deleted (a refresh token where there is one, else the access
   * token). Never shown, never logged.
   */
  grant?: ProviderGrant
}

/** What revoking a provider grant later needs: the token, and the client id it was issued to. */
export interface ProviderGrant {
  clientId: string
  refreshToken?: string
  accessToken?: string
}

/** A person's name as a provider hands it to an app once (Apple), never in its tokens. */
export interface GivenName {
  givenName?: string
  familyName?: string
}

/** Parameters of an authorization request the gateway (or a native app) started. */
export interface AuthorizationRequest {
  redirectUri: string
  state: string
  nonce: string
  codeChallenge: string
}

/** An authorization code posted back to the gateway, with what proves it is ours. */
export interface CodeCredential {
  code: string
  redirectUri: string
  /** PKCE verifier (RFC 7636), kept by the gateway or sent by a native app. */
  codeVerifier?: string
  /** The nonce sent in the authorization request; an ID token must echo it. */
  nonce?: string
  /** The state of the authorization request; some providers (Naver) want it at the token endpoint. */
  state?: string
}

/** A provider ID token a native SDK brought, verified: who it names and until when it is valid. */
export interface VerifiedIdToken {
  profile: ProviderProfile
  /** Milliseconds since the epoch: the gateway refuses the same token again until then. */
  expiresAt: number
  /** The client id of ours the token was issued to (one of the allow-listed audiences). */
  audience: string
}

/**
 * A provider telling us about one of its users: they took back their consent or left it
 * (Kakao's unlink callback, Apple's consent-revoked and account-delete), or their relay
 * address stopped or started forwarding (Apple's email-disabled, email-enabled).
 */
export interface ProviderNotice {
  subject: string
  event: 'revoked' | 'email-disabled' | 'email-enabled' | 'ignored'
  /** The provider's own word for it (Kakao's referrer_type, Apple's event type): for the audit trail. */
  reason: string
  /** A notice id the provider sends once (Apple's jti), with how long it may still be presented (ms since the epoch). */
  once?: { id: string; expiresAt: number }
}

/**
 * Told the subject a provider vouched for, before its profile is read. Answers whether an
 * account here is already linked to it (false also when that could not be told): a
 * returning user's login needs nothing from the profile, so a provider whose profile is a
 * call of its own (Kakao's /v2/user/me) need not make it.
 */
export type SubjectVouched = (subject: string) => Promise<boolean>

export interface IdentityProvider {
  /** The name clients use in `provider`, e.g. "google". */
  readonly name: string
  buildAuthorizationUrl(request: AuthorizationRequest): Promise<URL>
  /**
   * Exchanges the code server-side, validates any ID token, and reads the profile.
   * `vouched` hears the subject as soon as the provider has vouched for it (its token
   * endpoint's answer, whose signature may still be under check), when the profile would
   * need a call of its own (Kakao's /v2/user/me): the caller looks the account up meanwhile,
   * and for a subject with an account the profile may be the ID token's claims alone (the
   * call not made). The login still fails if the signature check does.
   */
  exchangeCode(credential: CodeCredential, vouched?: SubjectVouched): Promise<ProviderProfile>
  /**
   * Verifies an ID token a native SDK obtained (signature, iss, aud allow-list, exp, nonce).
   * `code`: the authorization code the same sign-in gave the app (Apple), exchanged so the
   * gateway holds the provider's refresh token; only adapters with `acceptsNativeCode`.
   */
  verifyIdToken?(idToken: string, nonce?: string, code?: string): Promise<VerifiedIdToken>
  /** True when a native sign-in may bring an authorization code along with its ID token. */
  readonly acceptsNativeCode?: boolean
  /** `form_post`: the provider POSTs the callback (Apple); absent: it redirects with a query. */
  readonly responseMode?: 'form_post'
  /**
   * Authenticates a provider's call about one of its users (its `Authorization` header and
   * fields) and reads it; throws InvalidToken or InvalidGrant for a caller that is not the provider.
   */
  readNotice?(notice: { authorization?: string; fields: Record<string, unknown> }): Promise<ProviderNotice>
  /** The name in a callback's `user` field (Apple's form_post); undefined when there is none usable. */
  nameFromCallback?(user: string): GivenName | undefined
  /** Checks a native SDK's access token belongs to our app, then reads the profile; `vouched` as for exchangeCode. */
  verifyAccessToken?(accessToken: string, vouched?: SubjectVouched): Promise<ProviderProfile>
  /**
   * Ends our app's link with a deleted account's person at the provider: Kakao's admin
   * unlink, or revoking the grant we kept. Resolves with what was done (for the audit
   * trail); throws ProviderError or ProviderTimeout when it should be tried again.
   */
  endLink?(subject: string, grant: ProviderGrant | undefined): Promise<string>
}

/** Settings shared by every provider adapter, parsed once from the environment. */
export interface ProviderRuntime {
  /** Upper bound for one provider HTTP call, in seconds (openid-client defaults to 30). */
  httpTimeoutSeconds: number
  /** True when plain-http, loopback provider URLs are allowed (development and tests). */
  allowInsecureLoopback: boolean
  /** Told of every HTTP call to the provider (the metrics); undefined: nobody listens. */
  calls?: ProviderCallObserver
}

/**
 * A provider module: how to read its settings from the environment and build the adapter.
 * Adding a provider means adding one of these to providers/ and to the registry.
 */
export interface ProviderDefinition<Settings = unknown> {
  readonly name: string
  /** Returns undefined when the provider is not configured (disabled); pushes problems it finds. */
  readSettings(env: Record<string, string | undefined>, problems: string[], production: boolean): Settings | undefined
  create(settings: Settings, runtime: ProviderRuntime): IdentityProvider
}
