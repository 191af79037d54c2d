// Naver (developers.naver.com, Naver Login API), on its legacy OAuth 2.0 flow: no discovery, no ID token and no
// PKCE. Naver binds the authorization code to the `state` of the authorization and wants
// that state again at the token endpoint, so the gateway's own state (kept server-side,
// single use) is what ties a code to the login that asked for it. Who the user is comes
// only from the profile API (`/v1/nid/me`), called server-side with the access token.
//
// Decisions where Naver's documentation is silent:
// - No PKCE challenge is sent. The legacy endpoints document none, so it would protect
//   nothing and only be one more parameter a production endpoint never saw; the code is
//   bound by `state` instead, which Naver checks at the token endpoint.
// - Email is never taken: Naver's is a contact address with no verified flag, and a
//   ProviderProfile carries only emails the provider vouches for. A required email is
//   asked for at signup like any other missing field.
// - The nickname comes from `nickname` only, never from `name`: `name` is the legal name,
//   which the user shared for another purpose and may not want shown as a display name.

import * as oidc from 'openid-client'
import { InvalidGrant, InvalidRequest, ProviderError, ProviderTimeout } from '../src/common/errors.js'
import { causeOf, describeCauses, isTimeout, OversizedResponse, ProviderHttp } from './provider-http.js'
import { NOTHING_KEPT, tokenToRevoke } from './openid-connect.js'
import { nicknameOf, photoOf } from './profile-fields.js'
import { readProviderUrl } from './settings.js'
import type { AuthorizationRequest, CodeCredential, IdentityProvider, ProviderDefinition, ProviderGrant, ProviderProfile, ProviderRuntime } from './types.js'

export interface NaverSettings {
  clientId: string
  clientSecret: string
  /** https://nid.naver.com: authorization and token endpoints. */
  authUrl: string
  /** https://openapi.naver.com: the profile API. */
  apiUrl: string
}

export const naver: ProviderDefinition<NaverSettings> = {
  name: 'naver',
  readSettings(env, problems, production) {
    const clientId = env.NAVER_CLIENT_ID?.trim()
    if (!clientId) return undefined
    const clientSecret = env.NAVER_CLIENT_SECRET?.trim()
    if (!clientSecret) problems.push('NAVER_CLIENT_SECRET is required when NAVER_CLIENT_ID is set')
    const authUrl = readProviderUrl(env, 'NAVER_AUTH_URL', 'https://nid.naver.com', problems, production)
    const apiUrl = readProviderUrl(env, 'NAVER_API_URL', 'https://openapi.naver.com', problems, production)
    return { clientId, clientSecret: clientSecret ?? '', authUrl, apiUrl }
  },
  create: (settings, runtime) => new NaverProvider(settings, runtime),
}


/** Naver ids are INT64 digits (apps before 2021-05-01) or base64-style strings of up to 64 characters. */
const SUBJECT_PATTERN = /^[\x21-\x7e]{1,128}$/
/** RFC 6750 §2.1 b64token (Naver's tokens are letters, digits and + / =): nothing else goes into a header. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
/** "wrong client id / client secret pair": Naver's answer to bad client credentials, as invalid_request. */
const CLIENT_CREDENTIALS_REFUSED = /client[ _-]?(id|secret)/i
const CHECK_CLIENT = 'check NAVER_CLIENT_ID and NAVER_CLIENT_SECRET against the application in the Naver developer console'
/** The profile API's documented failure `resultcode`s, counted by name in the metrics (token errors are OAuth's own codes). */
const NAVER_ERROR_CODES = ['024', '028']

type Via = 'code' | 'accessToken'

export class NaverProvider implements IdentityProvider {
  readonly name = 'naver'
  private readonly configuration: oidc.Configuration
  private readonly profileUrl: URL
  private readonly http: ProviderHttp

  constructor(settings: NaverSettings, runtime: ProviderRuntime) {
    const { clientId, clientSecret, authUrl, apiUrl } = settings
    this.http = new ProviderHttp('naver', runtime.calls, NAVER_ERROR_CODES)
    // Naver has no discovery document on this flow: the metadata is written by hand.
    this.configuration = new oidc.Configuration(
      {
        issuer: authUrl,
        authorization_endpoint: `${authUrl}/oauth2.0/authorize`,
        token_endpoint: `${authUrl}/oauth2.0/token`,
        revocation_endpoint: `${authUrl}/oauth2.0/revoke`,
      },
      clientId,
      clientSecret,
      oidc.ClientSecretPost(clientSecret),
    )
    this.configuration.timeout = runtime.httpTimeoutSeconds
    this.configuration[oidc.customFetch] = this.http.fetch
    if (runtime.allowInsecureLoopback && (authUrl.startsWith('http:') || apiUrl.startsWith('http:'))) {
      oidc.allowInsecureRequests(this.configuration)
    }
    this.profileUrl = new URL(`${apiUrl}/v1/nid/me`)
    this.http.nameEndpoint(this.configuration.serverMetadata().token_endpoint, 'token')
    this.http.nameEndpoint(this.profileUrl, 'userinfo')
    this.http.nameEndpoint(this.configuration.serverMetadata().revocation_endpoint, 'revocation')
  }

  async buildAuthorizationUrl(request: AuthorizationRequest): Promise<URL> {
    // Only what the legacy endpoint documents: no code_challenge (see the top), no nonce
    // (there is no ID token to carry it back), no scope (consent items live in the console).
    return oidc.buildAuthorizationUrl(this.configuration, { redirect_uri: request.redirectUri, state: request.state })
  }

  async exchangeCode(credential: CodeCredential): Promise<ProviderProfile> {
    const { state } = credential
    // A native app's own codeVerifier proves nothing to Naver, and Naver refuses a token
    // request without the authorization's state: do not spend the user's code on it.
    if (state === undefined) {
      throw new InvalidRequest('a naver code needs the state of POST /auth/login/start; a native app sends the accessToken of the Naver SDK')
    }
    // openid-client takes the callback URL; we rebuild it from what the client posted.
    const callback = new URL(credential.redirectUri)
    callback.search = ''
    callback.hash = ''
    callback.searchParams.set('code', credential.code)
    callback.searchParams.set('state', state)
    let tokens: oidc.TokenEndpointResponse
    try {
      // The 4th argument goes into the token request body: Naver's `state`, "required at issuance".
      tokens = await oidc.authorizationCodeGrant(this.configuration, callback, { expectedState: state }, { state })
    } catch (error) {
      throw tokenFailure(error)
    }
    const profile = await this.readProfile(tokens.access_token, 'code')
    // Kept to end the link when the account is deleted: the refresh token outlives the access token.
    const grant = tokens.refresh_token ? { refreshToken: tokens.refresh_token } : { accessToken: tokens.access_token }
    return { ...profile, grant: { clientId: this.configuration.clientMetadata().client_id, ...grant } }
  }

  /**
   * An access token a Naver SDK obtained on the device. Naver offers no introspection that
   * names the client a token was issued to (`/v1/nid/verify` tells only expiry and scopes),
   * so the profile call itself is the check: Naver ids are per application ("애플리케이션간에는
   * 이용자 식별자가 공유되지 않습니다", developer guide §3.3.2), so a token issued to another
   * app names a different id, never the identity of an account made through ours. An
   * expired, revoked or unknown token is refused by Naver with 401.
   */
  async verifyAccessToken(accessToken: string): Promise<ProviderProfile> {
    if (!BEARER_TOKEN.test(accessToken)) throw new InvalidGrant('this is not a naver access token')
    const profile = await this.readProfile(accessToken, 'accessToken')
    return { ...profile, grant: { clientId: this.configuration.clientMetadata().client_id, accessToken } }
  }

  /**
   * Ends the app's link for a deleted account: the kept token revoked at Naver's documented
   * revocation endpoint (RFC 7009, which replaced the legacy `grant_type=delete`); revoking
   * either token of the pair ends both and takes the app off the user's connected services.
   * Naver answers 200 even for a token it no longer knows, which is done as well.
   */
  async endLink(_subject: string, grant: ProviderGrant | undefined): Promise<string> {
    const kept = tokenToRevoke(grant)
    if (!kept) return NOTHING_KEPT
    try {
      await oidc.tokenRevocation(this.configuration, kept.token, { token_type_hint: kept.hint })
    } catch (error) {
      throw tokenFailure(error)
    }
    return `revoked the ${kept.what}`
  }

  /** GET /v1/nid/me: `{ resultcode, message, response: { id, ... } }`; only `id` is always there. */
  private async readProfile(accessToken: string, via: Via): Promise<ProviderProfile> {
    let response: Response
    try {
      // fetchProtectedResource, not fetchUserInfo: the answer has no top-level `sub`.
      response = await oidc.fetchProtectedResource(this.configuration, accessToken, this.profileUrl, 'GET')
    } catch (error) {
      // A 401 with WWW-Authenticate arrives as an error; its body is still unread.
      if (!(error instanceof oidc.WWWAuthenticateChallengeError)) throw transportFailure(error, 'profile API')
      response = error.response
    }
    const body = await jsonOf(response)
    if (response.status !== 200) throw profileRefusal(response.status, body, via)
    if (!isObject(body)) throw malformed('the profile answer is not a JSON object')
    // An HTTP 200 whose resultcode is not "00" is a failure Naver did not signal by status:
    // nothing says which side is at fault, so the user's credential is not blamed.
    if (body.resultcode !== '00') {
      throw new ProviderError('naver did not return the profile', {
        detail: `naver profile API answered HTTP 200 with resultcode ${JSON.stringify(body.resultcode)} (${excerpt(body.message)})`,
      })
    }
    return profileOf(body.response)
  }
}

function profileOf(response: unknown): ProviderProfile {
  if (!isObject(response)) throw malformed('the profile answer has no `response` object')
  const { id } = response
  // Kept exactly as sent: no trimming, no case change, never through a JSON number.
  if (typeof id !== 'string' || !SUBJECT_PATTERN.test(id)) {
    throw malformed(`response.id is ${typeof id === 'string' ? 'not a plausible Naver id' : `a ${typeof id}, not a string`}`)
  }
  return { subject: id, nickname: nicknameOf(response.nickname), photo: photoOf(response.profile_image) }
}

/** A non-200 answer of the profile API (Naver's documented 401 with 024 or 028, or 403). */
function profileRefusal(status: number, body: unknown, via: Via): Error {
  const resultcode = isObject(body) ? body.resultcode : undefined
  if (status === 401 && resultcode === '028') {
    return new ProviderError('naver did not return the profile', {
      detail: 'naver profile API saw no Authorization header (028): something between the gateway and Naver strips it',
    })
  }
  if (status === 401) {
    // 024: the token is expired, revoked (the user withdrew consent) or was never issued.
    return new InvalidGrant(
      via === 'accessToken'
        ? 'naver does not accept this access token (expired, revoked or unknown)'
        : 'naver no longer accepts the login (the user may have withdrawn consent); start again',
    )
  }
  if (status === 403) {
    return new ProviderError('naver did not return the profile', {
      detail: 'naver profile API answered 403: check that the application has the member profile API (API 권한관리) in the Naver developer console',
    })
  }
  return new ProviderError('naver did not return the profile', { detail: `naver profile API answered HTTP ${status}` })
}

/** Failures of the token request, including Naver's errors sent with HTTP 200. */
function tokenFailure(error: unknown): Error {
  const body = errorBodyOf(error)
  if (!body) return transportFailure(error, 'token endpoint')
  const description = typeof body.error_description === 'string' ? body.error_description : ''
  const said = `naver token endpoint answered ${body.error}${description ? ` (${excerpt(description)})` : ''}`
  if (body.error === 'invalid_client' || body.error === 'unauthorized_client' || CLIENT_CREDENTIALS_REFUSED.test(description)) {
    return new ProviderError('naver refused the token request', { cause: error, detail: `${said}: ${CHECK_CLIENT}` })
  }
  // "no valid data in session": the code is used, expired, or belongs to another state.
  if (body.error === 'invalid_request' || body.error === 'invalid_grant') {
    return new InvalidGrant('naver rejected the authorization code', { cause: error, detail: said })
  }
  return new ProviderError('naver could not issue a token', { cause: error, detail: said })
}

/**
 * The `{ error, error_description }` Naver sent, whichever way openid-client reports it: a
 * non-200 JSON error is a ResponseBodyError; the same body with HTTP 200 fails the token
 * response checks (OAUTH_INVALID_RESPONSE) and sits at `cause.cause.body`.
 */
function errorBodyOf(error: unknown): { error: string; error_description?: unknown } | undefined {
  if (error instanceof oidc.ResponseBodyError) return { error: error.error, error_description: error.error_description }
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
    const body = isObject(cause.cause) ? cause.cause.body : undefined
    if (isObject(body) && typeof body.error === 'string' && body.error !== '') {
      return { error: body.error, error_description: body.error_description }
    }
  }
  return undefined
}

function transportFailure(error: unknown, what: string): Error {
  if (isTimeout(error)) return new ProviderTimeout('naver did not answer in time', { cause: error })
  const oversized = causeOf(error, OversizedResponse)
  if (oversized) return oversized
  const status = causeOf(error, Response)?.status
  const detail = status !== undefined ? `naver ${what} answered HTTP ${status}` : `naver ${what} could not be used: ${describeCauses(error)}`
  return new ProviderError('naver could not be used', { cause: error, detail })
}

function malformed(what: string): ProviderError {
  return new ProviderError('naver sent an unusable answer', { detail: `naver profile API: ${what}` })
}

async function jsonOf(response: Response): Promise<unknown> {
  try {
    return JSON.parse(await response.text())
  } catch {
    return undefined
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A provider-sent text, shortened for a log line. */
function excerpt(value: unknown): string {
  return String(value).replace(/\s+/g, ' ').slice(0, 200)
}
