// An adapter for any OpenID Connect provider reached through openid-client: discovery,
// the authorization code grant with PKCE, and ID token validation (iss, aud, exp, nonce,
// and the signature, which openid-client skips unless non-repudiation checks are on).
// Google uses it as it is; Kakao's OIDC mode and configured generic providers build on it.

import * as oidc from 'openid-client'
import { InvalidGrant, ProviderError, ProviderTimeout } from '../src/errors.js'
import type { AuthorizationRequest, CodeCredential, IdentityProvider, ProviderProfile, ProviderRuntime } from './types.js'

export interface OpenIdConnectSettings {
  issuer: string
  clientId: string
  clientSecret: string
  scope: string
}

export class OpenIdConnectProvider implements IdentityProvider {
  private configuration: Promise<oidc.Configuration> | undefined

  constructor(
    readonly name: string,
    protected readonly settings: OpenIdConnectSettings,
    protected readonly runtime: ProviderRuntime,
  ) {}

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
    const configuration = await this.discover()
    // openid-client takes the callback URL; redirect_uri is that URL without its query.
    const callback = new URL(credential.redirectUri)
    callback.search = ''
    callback.hash = ''
    callback.searchParams.set('code', credential.code)
    // RFC 9207: where the provider advertises `iss` in responses, openid-client demands it.
    // The provider was already fixed server-side by our login transaction or the request,
    // which is the mix-up defence that `iss` would otherwise give.
    if (configuration.serverMetadata().authorization_response_iss_parameter_supported) {
      callback.searchParams.set('iss', configuration.serverMetadata().issuer)
    }
    const tokens = await this.call(() =>
      oidc.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: credential.codeVerifier,
        expectedNonce: credential.nonce,
        idTokenExpected: true,
      }),
    )
    const claims = tokens.claims()
    if (!claims) throw new ProviderError(`${this.name} returned no ID token`)
    return this.profileFromClaims(claims)
  }

  /** Maps standard OIDC claims; email only when the provider says it is verified. */
  protected profileFromClaims(claims: oidc.IDToken): ProviderProfile {
    return {
      subject: String(claims.sub),
      email: claims.email_verified === true && typeof claims.email === 'string' ? claims.email.toLowerCase() : undefined,
      nickname: typeof claims.name === 'string' ? claims.name : undefined,
      photo: typeof claims.picture === 'string' && claims.picture.startsWith('https://') ? claims.picture : undefined,
    }
  }

  /** Discovery runs once and is cached; a failed discovery is retried on the next login. */
  protected discover(): Promise<oidc.Configuration> {
    this.configuration ??= this.call(async () => {
      const { issuer, clientId, clientSecret } = this.settings
      const configuration = await oidc.discovery(new URL(issuer), clientId, clientSecret, oidc.ClientSecretPost(clientSecret), {
        execute: this.runtime.allowInsecureLoopback && issuer.startsWith('http:') ? [oidc.allowInsecureRequests] : [],
        timeout: this.runtime.httpTimeoutSeconds,
      })
      configuration.timeout = this.runtime.httpTimeoutSeconds
      // Verify ID token signatures too, not only their claims.
      oidc.enableNonRepudiationChecks(configuration)
      return configuration
    }).catch((error: unknown) => {
      this.configuration = undefined
      throw error
    })
    return this.configuration
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

const REJECTED_CREDENTIAL_ERRORS = new Set(['invalid_grant', 'invalid_request'])
const ID_TOKEN_CHECK_FAILURES = new Set(['OAUTH_JWT_CLAIM_COMPARISON_FAILED', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED'])

export function classifyProviderFailure(provider: string, error: unknown): Error {
  if (error instanceof InvalidGrant || error instanceof ProviderError || error instanceof ProviderTimeout) return error
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

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || isTimeout(error.cause))
}

function isSignatureFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  return code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || /signature/i.test(error.message) || isSignatureFailure(error.cause)
}
