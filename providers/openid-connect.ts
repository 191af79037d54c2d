// An adapter for any OpenID Connect provider reached through openid-client: discovery,
// the authorization code grant with PKCE, and ID token validation: openid-client checks the
// claims (iss, aud, exp, nonce), jose the signature against the provider's JWKS (a check
// openid-client would skip), so that a provider with a second call to make (Kakao's profile
// API) can make it while the signature is checked.
// Google uses it as it is; Kakao's OIDC mode and configured generic providers build on it.

import * as jose from 'jose'
import * as oidc from 'openid-client'
import { GatewayError, InvalidGrant, ProviderError, ProviderTimeout } from '../src/common/errors.js'
import { hasControlCharacter } from '../src/common/profile-text.js'
import { emailOf, nicknameOf, photoOf } from './profile-fields.js'
import { causeOf, isTimeout, ProviderHttp } from './provider-http.js'
import type { AuthorizationRequest, CodeCredential, IdentityProvider, ProviderGrant, ProviderProfile, ProviderRuntime, VerifiedIdToken } from './types.js'

export interface OpenIdConnectSettings {
  issuer: string
  clientId: string
  clientSecret: string
  scope: string
  /** Client ids whose ID tokens a native SDK may bring (web, Android, iOS keys differ). */
  audiences: string[]
}

/** A code grant's answer; `signed`: see exchangeCodeForTokens. `claims` is undefined when it carried no ID token. */
export interface CodeGrant {
  tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers
  claims: oidc.IDToken | undefined
  signed: Promise<void>
}

/** What every ID token, of either flow, must carry for checkIdTokenClaims to bound it. */
const ID_TOKEN_CLAIMS = { requiredClaims: ['sub', 'iat', 'exp'] }

/** OIDC Core §3.1.3.7 allows a small clock skew; we cap it at 30 s. */
const CLOCK_TOLERANCE_SECONDS = 30
/**
 * Bounds on an ID token's times beyond exp (see checkIdTokenClaims): how far its iat may
 * lie ahead of our clock, how old it may be on the code flow, how long it may live.
 */
const MAX_IAT_AHEAD_SECONDS = 5 * 60
const MAX_CODE_FLOW_AGE_SECONDS = 10 * 60
const MAX_LIFETIME_SECONDS = 24 * 60 * 60
/** OIDC Core §2: a subject is at most 255 ASCII characters. */
const MAX_SUBJECT_LENGTH = 255

export class OpenIdConnectProvider implements IdentityProvider {
  private discovered: Promise<Discovered> | undefined
  private providerKeys: ReturnType<typeof jose.createRemoteJWKSet> | undefined
  /** Every call to the provider goes through this: bounded, and timed per endpoint. */
  protected readonly http: ProviderHttp

  /** `errorCodes`: the provider's own error codes (beyond OAuth's) its calls are counted by. */
  constructor(
    readonly name: string,
    protected readonly settings: OpenIdConnectSettings,
    protected readonly runtime: ProviderRuntime,
    errorCodes: readonly string[] = [],
  ) {
    this.http = new ProviderHttp(name, runtime.calls, errorCodes)
  }

  async buildAuthorizationUrl(request: AuthorizationRequest): Promise<URL> {
    const configuration = await this.discover()
    return oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: request.redirectUri,
      scope: this.settings.scope,
      state: request.state,
      nonce: request.nonce,
      code_challenge: request.codeChallenge,
      code_challenge_method: 'S256',
    })
  }

  async exchangeCode(credential: CodeCredential): Promise<ProviderProfile> {
    const { tokens, claims, signed } = await this.exchangeCodeForTokens(credential)
    if (!claims) throw new ProviderError(`${this.name} returned no ID token`)
    await signed
    return { ...this.profileFromClaims(claims), grant: await this.grantToKeep(this.settings.clientId, tokens) }
  }

  /**
   * What to keep of a code grant for revoking it when the account is deleted: the refresh
   * token, else the access token, and only when the provider has a revocation endpoint.
   */
  protected async grantToKeep(clientId: string, tokens: oidc.TokenEndpointResponse): Promise<ProviderGrant | undefined> {
    if (!(await this.serverMetadata()).revocation_endpoint) return undefined
    if (tokens.refresh_token) return { clientId, refreshToken: tokens.refresh_token }
    return tokens.access_token ? { clientId, accessToken: tokens.access_token } : undefined
  }

  /** Revokes the grant kept at login (RFC 7009) as the client it was issued to. */
  async endLink(_subject: string, grant: ProviderGrant | undefined): Promise<string> {
    const kept = tokenToRevoke(grant)
    if (!grant || !kept) return NOTHING_KEPT
    if (!(await this.serverMetadata()).revocation_endpoint) return 'nothing to revoke: the provider has no revocation endpoint'
    const configuration = await this.configurationFor(grant.clientId)
    return this.call(async () => {
      try {
        await oidc.tokenRevocation(configuration, kept.token, { token_type_hint: kept.hint })
        return `revoked the ${kept.what}`
      } catch (error) {
        // Google answers 400 invalid_token for a token that already died (an expired access token).
        if (error instanceof oidc.ResponseBodyError && error.error === 'invalid_token') return `nothing to revoke: ${this.name} no longer knows the ${kept.what}`
        throw error
      }
    })
  }

  /** The configuration to call the token and revocation endpoints as `clientId` (ours, unless a subclass has several). */
  protected configurationFor(_clientId: string): Promise<oidc.Configuration> {
    return this.discover()
  }

  /**
   * The code grant itself: the token endpoint response with its ID token's claims validated
   * (nonce, iss, aud, exp, then checkIdTokenClaims with the code flow's age bound), and
   * `signed`, the check of its signature, under way. Nothing may be decided on the claims
   * before `signed` has resolved; a provider may use the time for calls that decide nothing
   * (Kakao's profile API). `signed` rejects with the ID token's failure; it is already
   * handled, so a caller that gives up on the login for another reason may leave it.
   */
  protected async exchangeCodeForTokens(credential: CodeCredential): Promise<CodeGrant> {
    const tokens = await this.authorizationCodeGrant(credential)
    const claims = tokens.claims()
    if (!claims || !tokens.id_token) return { tokens, claims: undefined, signed: Promise.resolve() }
    // The token came from the provider just now: one issued long ago is a replay, not a login.
    checkIdTokenClaims(this.name, claims, { maxAgeSeconds: MAX_CODE_FLOW_AGE_SECONDS })
    const signed = this.verifySignedByProvider(tokens.id_token, ID_TOKEN_CLAIMS).then(() => {})
    signed.catch(() => {})
    return { tokens, claims, signed }
  }

  private async authorizationCodeGrant(credential: CodeCredential): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers> {
    const { configuration, metadata } = await this.discovery()
    // openid-client takes the callback URL; redirect_uri is that URL without its query.
    const callback = new URL(credential.redirectUri)
    callback.search = ''
    callback.hash = ''
    callback.searchParams.set('code', credential.code)
    // RFC 9207: where the provider advertises `iss` in responses, openid-client demands it.
    // The provider was already fixed server-side by our login transaction or the request,
    // which is the mix-up defence that `iss` would otherwise give.
    if (metadata.authorization_response_iss_parameter_supported) {
      callback.searchParams.set('iss', metadata.issuer)
    }
    return this.call(() =>
      oidc.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: credential.codeVerifier,
        expectedNonce: credential.nonce,
        idTokenExpected: true,
      }),
    )
  }

  /**
   * An ID token a native SDK obtained: signature against the provider's JWKS (cached; an
   * unknown kid triggers at most one refetch per cooldown), exact issuer, an audience from
   * our allow-list (with azp when there are several), exp/iat, and the nonce.
   */
  async verifyIdToken(idToken: string, nonce?: string): Promise<VerifiedIdToken> {
    const { audiences } = this.settings
    const claims = await this.verifySignedByProvider(idToken, ID_TOKEN_CLAIMS)
    if (Array.isArray(claims.aud) && claims.aud.length > 1 && !audiences.includes(String(claims.azp))) {
      throw new InvalidGrant(`the ${this.name} ID token was issued to another party (azp)`)
    }
    // A native app may hold its token for a while: only exp bounds its age.
    checkIdTokenClaims(this.name, claims, {})
    // A nonce the client used must come back; a nonce the client did not send must not appear.
    if (claims.nonce !== this.nonceClaimFor(nonce)) throw new InvalidGrant(`the ${this.name} ID token nonce does not match`)
    const audience = typeof claims.aud === 'string' ? claims.aud : audiences.find((allowed) => claims.aud!.includes(allowed))!
    return { profile: this.profileFromClaims(claims as oidc.IDToken), expiresAt: claims.exp! * 1000, audience }
  }

  /**
   * A JWT the provider signed (an ID token, a server notification): signature against its
   * JWKS (cached; an unknown kid triggers at most one refetch per cooldown), exact issuer,
   * an audience from our allow-list, the provider's advertised asymmetric algorithms.
   */
  protected async verifySignedByProvider(token: string, options: { requiredClaims: string[]; maxTokenAge?: string }): Promise<jose.JWTPayload> {
    const metadata = await this.serverMetadata()
    if (!metadata.jwks_uri) throw new ProviderError(`${this.name} publishes no jwks_uri`)
    this.providerKeys ??= jose.createRemoteJWKSet(new URL(metadata.jwks_uri), {
      timeoutDuration: this.runtime.httpTimeoutSeconds * 1000,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
      [jose.customFetch]: this.http.fetch,
    })
    try {
      const { payload } = await jose.jwtVerify(token, this.providerKeys, {
        issuer: metadata.issuer,
        audience: this.settings.audiences,
        algorithms: asymmetricAlgorithms(metadata.id_token_signing_alg_values_supported),
        requiredClaims: options.requiredClaims,
        maxTokenAge: options.maxTokenAge,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      })
      return payload
    } catch (error) {
      throw classifyIdTokenFailure(this.name, error)
    }
  }

  /** The `nonce` claim a native ID token must carry for the nonce the client sent: that nonce itself. */
  protected nonceClaimFor(nonce: string | undefined): string | undefined {
    return nonce
  }

  /** Maps standard OIDC claims; email only when the provider says it is verified. */
  protected profileFromClaims(claims: oidc.IDToken): ProviderProfile {
    return {
      subject: String(claims.sub),
      email: claims.email_verified === true ? emailOf(claims.email) : undefined,
      nickname: nicknameOf(claims.name),
      photo: photoOf(claims.picture),
    }
  }

  /** The configuration openid-client calls the provider with. */
  protected async discover(): Promise<oidc.Configuration> {
    return (await this.discovery()).configuration
  }

  /** The provider's metadata as discovered; read-only. */
  protected async serverMetadata(): Promise<Readonly<oidc.ServerMetadata>> {
    return (await this.discovery()).metadata
  }

  /**
   * Discovery runs once and is cached; a failed discovery is retried on the next login. The
   * metadata is kept beside the configuration: openid-client's serverMetadata() makes a deep
   * copy on every call (tens of µs, several times per login).
   */
  private discovery(): Promise<Discovered> {
    this.discovered ??= this.call(async () => {
      const { issuer, clientId, clientSecret } = this.settings
      const configuration = await oidc.discovery(new URL(issuer), clientId, clientSecret, this.clientAuthentication(), {
        execute: this.runtime.allowInsecureLoopback && issuer.startsWith('http:') ? [oidc.allowInsecureRequests] : [],
        timeout: this.runtime.httpTimeoutSeconds,
        [oidc.customFetch]: this.http.fetch,
      })
      const metadata = configuration.serverMetadata()
      this.http.nameEndpoint(metadata.token_endpoint, 'token')
      this.http.nameEndpoint(metadata.userinfo_endpoint, 'userinfo')
      this.http.nameEndpoint(metadata.jwks_uri, 'jwks')
      this.http.nameEndpoint(metadata.revocation_endpoint, 'revocation')
      configuration.timeout = this.runtime.httpTimeoutSeconds
      // No non-repudiation checks here: exchangeCodeForTokens checks the code grant's ID
      // token signature itself, beside the provider's next call.
      return { configuration, metadata: Object.freeze(metadata) }
    }).catch((error: unknown) => {
      this.discovered = undefined
      throw error
    })
    return this.discovered
  }

  /** How we authenticate at the token endpoint: client_secret_post unless a provider says otherwise. */
  protected clientAuthentication(): oidc.ClientAuth {
    return oidc.ClientSecretPost(this.settings.clientSecret)
  }

  /** Runs one provider interaction and turns openid-client's failures into our typed errors. */
  protected async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw classifyProviderFailure(this.name, error)
    }
  }
}

export const NOTHING_KEPT = 'nothing to revoke: no grant was kept'

interface Discovered {
  configuration: oidc.Configuration
  metadata: Readonly<oidc.ServerMetadata>
}

/** The token of a kept grant that revokes it (RFC 7009): the refresh token where there is one, else the access token. */
export function tokenToRevoke(grant: ProviderGrant | undefined): { token: string; hint: 'refresh_token' | 'access_token'; what: string } | undefined {
  if (grant?.refreshToken) return { token: grant.refreshToken, hint: 'refresh_token', what: 'refresh token' }
  if (grant?.accessToken) return { token: grant.accessToken, hint: 'access_token', what: 'access token' }
  return undefined
}

/**
 * What the libraries leave open, for ID tokens of both flows: a subject that is empty (every
 * such login would be one account) or unstorable, an iat in the future or (on the code
 * flow) too far in the past, and a lifetime beyond a day. jose and openid-client have
 * already checked signature, iss, aud, exp and the claims' types.
 */
function checkIdTokenClaims(provider: string, claims: jose.JWTPayload, limits: { maxAgeSeconds?: number }): void {
  const { sub, iat, exp } = claims
  if (typeof sub !== 'string' || sub === '') throw new InvalidGrant(`the ${provider} ID token names no subject`)
  if (sub.length > MAX_SUBJECT_LENGTH || hasControlCharacter(sub)) throw new InvalidGrant(`the ${provider} ID token subject is malformed`)
  if (typeof iat !== 'number' || typeof exp !== 'number') throw new InvalidGrant(`the ${provider} ID token lacks iat or exp`)
  const now = Math.floor(Date.now() / 1000)
  if (iat > now + MAX_IAT_AHEAD_SECONDS) throw new InvalidGrant(`the ${provider} ID token was issued in the future (iat)`)
  if (limits.maxAgeSeconds !== undefined && iat < now - limits.maxAgeSeconds) {
    throw new InvalidGrant(`the ${provider} ID token was issued too long ago (iat)`)
  }
  if (exp - iat > MAX_LIFETIME_SECONDS) throw new InvalidGrant(`the ${provider} ID token lives longer than a day (exp)`)
}

const REJECTED_CREDENTIAL_ERRORS = new Set(['invalid_grant', 'invalid_request'])
const ID_TOKEN_CHECK_FAILURES = new Set(['OAUTH_JWT_CLAIM_COMPARISON_FAILED', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED'])

export function classifyProviderFailure(provider: string, error: unknown): Error {
  // Our own typed failures (an oversized body from boundedFetch) arrive wrapped by openid-client.
  const own = causeOf(error, GatewayError)
  if (own) return own
  if (error instanceof oidc.ResponseBodyError) {
    if (REJECTED_CREDENTIAL_ERRORS.has(error.error)) {
      return new InvalidGrant(`${provider} rejected the authorization code`, { cause: error })
    }
    return new ProviderError(`${provider} refused the request (${error.error})`, { cause: error })
  }
  if (error instanceof oidc.ClientError) {
    if (error.code === 'OAUTH_TIMEOUT') return new ProviderTimeout(`${provider} did not answer in time`, { cause: error })
    if (error.code && ID_TOKEN_CHECK_FAILURES.has(error.code)) {
      return new InvalidGrant(`the ${provider} ID token failed validation`, { cause: error })
    }
    if (isSignatureFailure(error)) return new InvalidGrant(`the ${provider} ID token signature is invalid`, { cause: error })
  }
  if (isTimeout(error)) return new ProviderTimeout(`${provider} did not answer in time`, { cause: error })
  return new ProviderError(`${provider} could not be used`, { cause: error })
}

function classifyIdTokenFailure(provider: string, error: unknown): Error {
  if (error instanceof jose.errors.JWKSTimeout) return new ProviderTimeout(`${provider} keys did not arrive in time`, { cause: error })
  if (error instanceof jose.errors.JOSEError) {
    if (error instanceof jose.errors.JWKSInvalid) return new ProviderError(`${provider} published an invalid key set`, { cause: error })
    return new InvalidGrant(`the ${provider} ID token failed validation`, { cause: error })
  }
  return new ProviderError(`${provider} keys could not be fetched`, { cause: error })
}

/** The provider's advertised ID token algorithms, never `none` or a symmetric one. */
function asymmetricAlgorithms(advertised: string[] | undefined): string[] {
  const allowed = (advertised ?? ['RS256']).filter((alg) => /^(RS|PS|ES)(256|384|512)$|^EdDSA$/.test(alg))
  return allowed.length > 0 ? allowed : ['RS256']
}

function isSignatureFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  return code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || /signature/i.test(error.message) || isSignatureFailure(error.cause)
}
