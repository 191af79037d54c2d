// Kakao (developers.kakao.com, Kakao Login REST API) in OIDC mode: discovery at kauth, the code grant with PKCE and a
// nonce, client_secret_post only, the ID token validated with its signature, then the
// profile from kapi's /v2/user/me with the provider access token.
//
// Kakao's quirks stay in here:
// - Member ids are Longs. /v2/user/me and /v1/user/access_token_info send `id` as a raw
//   JSON number, which JSON.parse rounds above 2^53; kapi answers are parsed with
//   lossless-json, and the id is compared, as a string, with the ID token's string `sub`.
// - Errors carry `error_code: "KOE…"` (kauth) or `{ msg, code }` (kapi); they become our
//   contract's errors, with an operator-only `detail` saying what to check.
// - Native SDK access tokens are accepted only after /v1/user/access_token_info proves
//   they belong to one of KAKAO_APP_IDS; without that list they are refused.
// - Every response is read with a size cap: an oversized body is a provider error.

import { isLosslessNumber, parse as parseLossless } from 'lossless-json'
import * as oidc from 'openid-client'
import { InvalidGrant, InvalidRequest, InvalidToken, ProviderError } from '../src/common/errors.js'
import { sameSecret } from '../src/common/secrets.js'
import { classifyProviderFailure, OpenIdConnectProvider, type OpenIdConnectSettings } from './openid-connect.js'
import { splitList } from '../src/common/env-values.js'
import { emailOf, nicknameOf, photoOf } from './profile-fields.js'
import { describeCauses } from './provider-http.js'
import { readProviderUrl } from './settings.js'
import type { CodeCredential, ProviderDefinition, ProviderProfile, ProviderNotice, ProviderRuntime, SubjectVouched } from './types.js'

export interface KakaoSettings extends OpenIdConnectSettings {
  /** kapi base URL, without a trailing slash. */
  apiUrl: string
  /** Numeric Kakao app ids whose access tokens a native SDK may bring; empty: none accepted. */
  appIds: string[]
  /** KAKAO_ADMIN_KEY: what Kakao's unlink callback presents (`KakaoAK <key>`), and what unlinks a deleted account; unset: neither works. */
  adminKey?: string
}

/** openid plus the consent items a login needs (Kakao's docs: `openid` must be in an explicit scope). */
const DEFAULT_SCOPE = 'openid profile_nickname profile_image account_email'

export const kakao: ProviderDefinition<KakaoSettings> = {
  name: 'kakao',
  readSettings(env, problems, production) {
    const clientId = env.KAKAO_CLIENT_ID?.trim()
    if (!clientId) return undefined
    // Kakao lets an app turn its client secret off; production must have it on.
    const clientSecret = env.KAKAO_CLIENT_SECRET?.trim() ?? ''
    if (!clientSecret && production) {
      problems.push('KAKAO_CLIENT_SECRET is required in production when KAKAO_CLIENT_ID is set (turn the client secret on in Kakao Developers)')
    }
    const issuer = readProviderUrl(env, 'KAKAO_AUTH_URL', 'https://kauth.kakao.com', problems, production)
    const apiUrl = readProviderUrl(env, 'KAKAO_API_URL', 'https://kapi.kakao.com', problems, production)
    const audiences = splitList(env.KAKAO_AUDIENCES)
    const appIds = splitList(env.KAKAO_APP_IDS)
    for (const appId of appIds) {
      if (!/^[1-9][0-9]{0,18}$/.test(appId)) problems.push(`KAKAO_APP_IDS: "${appId}" is not a numeric Kakao app id`)
    }
    const scope = env.KAKAO_SCOPE?.trim() || DEFAULT_SCOPE
    if (!scope.split(/[\s,]+/).includes('openid')) problems.push('KAKAO_SCOPE must include openid (the gateway uses Kakao in OpenID Connect mode)')
    const adminKey = env.KAKAO_ADMIN_KEY?.trim() || undefined
    return { clientId, clientSecret, issuer, apiUrl, scope, audiences: [clientId, ...audiences], appIds, adminKey }
  },
  create: (settings, runtime) => new KakaoProvider(settings, runtime),
}

/** No Kakao answer we use comes near this; anything larger is refused unread. */

/** A member number: a positive Long, in decimal. */
const MEMBER_ID = /^[1-9][0-9]{0,18}$/

export class KakaoProvider extends OpenIdConnectProvider {
  constructor(protected override readonly settings: KakaoSettings, runtime: ProviderRuntime) {
    super('kakao', settings, runtime, KAKAO_ERROR_CODES)
    this.http.nameEndpoint(`${settings.apiUrl}/v2/user/me`, 'userinfo')
    this.http.nameEndpoint(`${settings.apiUrl}/v1/user/access_token_info`, 'token_info')
    this.http.nameEndpoint(`${settings.apiUrl}/v1/user/unlink`, 'unlink')
  }

  /**
   * Kakao's unlink callback (Kakao Login > Unlink callback): `Authorization: KakaoAK <admin
   * key>`, the app's id, the member id and why (referrer_type: ACCOUNT_DELETE,
   * FORCED_ACCOUNT_DELETE, UNLINK_FROM_APPS, UNLINK_FROM_ADMIN, INCOMPLETE_SIGN_UP).
   */
  async readNotice(notice: { authorization?: string; fields: Record<string, unknown> }): Promise<ProviderNotice> {
    const { adminKey, appIds } = this.settings
    if (!adminKey) {
      throw new InvalidToken('the Kakao unlink callback is not accepted here', { detail: 'set KAKAO_ADMIN_KEY to the app\'s primary admin key to accept Kakao\'s unlink callback' })
    }
    if (!sameSecret(notice.authorization ?? '', `KakaoAK ${adminKey}`)) throw new InvalidToken('the callback does not carry this app\'s admin key')
    const { app_id: appId, user_id: userId, referrer_type: reason } = notice.fields
    if (typeof appId !== 'string' || !appIds.includes(appId)) throw new InvalidRequest('app_id is not one of this gateway\'s Kakao apps')
    if (typeof userId !== 'string' || !/^[1-9][0-9]{0,19}$/.test(userId)) throw new InvalidRequest('user_id must be a Kakao member id')
    const why = typeof reason === 'string' && /^[A-Z_]{1,64}$/.test(reason) ? reason : 'UNKNOWN'
    // Kakao unlinks by itself, after 24 hours, a member whose profile the app never read
    // (an ID-token login reads none). The person did not leave: their next Kakao login, with
    // the same member id, finds the same account. So this one changes nothing here.
    return { subject: userId, event: why === 'INCOMPLETE_SIGN_UP' ? 'ignored' : 'revoked', reason: why }
  }

  /**
   * The code grant, then, for a member without an account here, the profile API with the
   * access token; both must name the same member. A returning member's login needs nothing
   * of the profile: the ID token names them, and one call to kapi fewer spares them a round
   * trip and the app its kapi quota.
   */
  override async exchangeCode(credential: CodeCredential, vouched?: SubjectVouched): Promise<ProviderProfile> {
    const { tokens, claims, signed } = await this.exchangeCodeForTokens(credential)
    if (!claims) throw new ProviderError('kakao returned no ID token', { detail: 'turn OpenID Connect on for the app in Kakao Developers (Kakao Login > OpenID Connect)' })
    // The ID token came from Kakao's token endpoint just now, over our own connection: its
    // subject may start the (read-only) account lookup while its signature is checked;
    // nothing is decided before the signature has been found good.
    if (await vouched?.(claims.sub)) {
      await signed
      return this.profileFromClaims(claims)
    }
    const [me] = await Promise.all([this.userMe(tokens.access_token), signed])
    if (me.subject !== claims.sub) {
      throw new ProviderError('kakao named two different members for one login', {
        detail: `the ID token sub "${String(claims.sub)}" differs from /v2/user/me id "${me.subject}"`,
      })
    }
    return me
  }

  /**
   * An access token from Kakao's native SDK. access_token_info first: the token must belong
   * to one of our app ids before /v2/user/me is trusted, and both must name the same member.
   * A returning member's profile is not read (see exchangeCode).
   */
  async verifyAccessToken(accessToken: string, vouched?: SubjectVouched): Promise<ProviderProfile> {
    if (this.settings.appIds.length === 0) {
      throw new InvalidRequest('this gateway does not accept Kakao access tokens; send a code or an idToken', {
        detail: 'a Kakao accessToken login was refused: set KAKAO_APP_IDS to the numeric app id(s) of your Kakao app to accept them',
      })
    }
    // RFC 6750 b64token: anything else is not a Kakao token (and must not reach a header).
    if (!/^[A-Za-z0-9._~+/-]+=*$/.test(accessToken)) throw new InvalidGrant('the Kakao access token is malformed')
    const info = await this.kapi('/v1/user/access_token_info', accessToken)
    const id = exactMember(info.id, '/v1/user/access_token_info')
    const appId = digitsOf(info.app_id)
    if (appId === undefined || !/^[0-9]+$/.test(appId)) {
      throw new ProviderError('kakao answered without an app id', { detail: '/v1/user/access_token_info has no numeric app_id' })
    }
    if (!this.settings.appIds.includes(appId)) {
      throw new InvalidGrant('the Kakao access token was issued to another app', {
        detail: `access token of Kakao app ${appId}; KAKAO_APP_IDS allows ${this.settings.appIds.join(', ')}`,
      })
    }
    const expiresIn = Number(digitsOf(info.expires_in))
    if (!Number.isFinite(expiresIn)) {
      throw new ProviderError('kakao sent a malformed response', { detail: '/v1/user/access_token_info has no numeric expires_in' })
    }
    if (expiresIn <= 0) throw new InvalidGrant('the Kakao access token has expired')
    if (await vouched?.(id)) return { subject: id }
    const me = await this.userMe(accessToken)
    if (me.subject !== id) {
      throw new ProviderError('kakao named two different members for one access token', {
        detail: `/v1/user/access_token_info id "${id}" differs from /v2/user/me id "${me.subject}"`,
      })
    }
    return me
  }

  /**
   * Unlinks the member from our app with the admin key (Kakao Login > Unlink,
   * `target_id_type=user_id`): no user token is needed, so none is kept. Kakao sends no
   * unlink callback for an unlink the app made. A member already unlinked (-101) is done.
   */
  override async endLink(subject: string): Promise<string> {
    const { adminKey, apiUrl } = this.settings
    if (!adminKey) throw new ProviderError('kakao unlink needs the admin key', { detail: 'set KAKAO_ADMIN_KEY to the app\'s primary admin key: deleted accounts stay linked at Kakao until then' })
    let response: Response
    try {
      response = await this.http.fetch(`${apiUrl}/v1/user/unlink`, {
        method: 'POST',
        headers: { authorization: `KakaoAK ${adminKey}`, 'content-type': 'application/x-www-form-urlencoded;charset=utf-8' },
        body: new URLSearchParams({ target_id_type: 'user_id', target_id: subject }).toString(),
        signal: AbortSignal.timeout(this.runtime.httpTimeoutSeconds * 1000),
      })
    } catch (error) {
      throw classifyProviderFailure('kakao', error)
    }
    const text = await response.text()
    if (response.ok) return 'unlinked with the admin key'
    const code = kapiErrorCode(text)
    if (code === -101) return 'nothing to unlink: the member is no longer linked to the app'
    const what = `kapi /v1/user/unlink answered HTTP ${response.status}${code !== undefined ? ` code ${code}` : ''}`
    throw new ProviderError('kakao did not unlink the member', { detail: response.status === 401 ? `${what}: check KAKAO_ADMIN_KEY` : what })
  }

  /** Native ID tokens (verifyIdToken, inherited): Kakao's claims are nickname and picture, and email only when valid and verified. */
  protected override profileFromClaims(claims: oidc.IDToken): ProviderProfile {
    return {
      subject: String(claims.sub),
      email: emailOf(claims.email),
      nickname: nicknameOf(claims.nickname),
      photo: photoOf(claims.picture),
    }
  }

  /** Client auth in the body only (Basic fails at Kakao); none at all when the app's secret is off. */
  protected override clientAuthentication(): oidc.ClientAuth {
    return this.settings.clientSecret ? oidc.ClientSecretPost(this.settings.clientSecret) : oidc.None()
  }


  protected override async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      throw await classifyKakaoFailure(error)
    }
  }

  /** /v2/user/me: the member id exactly as sent, and the profile the user agreed to share. */
  private async userMe(accessToken: string): Promise<ProviderProfile> {
    const me = await this.kapi('/v2/user/me', accessToken)
    const subject = exactMember(me.id, '/v2/user/me')
    const account = objectAt(me, 'kakao_account')
    const profile = objectAt(account, 'profile')
    // An email counts only when Kakao says it is both valid and verified (and it was agreed to).
    const email = account?.is_email_valid === true && account.is_email_verified === true ? emailOf(account.email) : undefined
    // Kakao's placeholder picture is not the user's photo.
    const photo = profile?.is_default_image === true ? undefined : photoOf(profile?.profile_image_url) ?? photoOf(profile?.thumbnail_image_url)
    return { subject, email, nickname: nicknameOf(profile?.nickname), photo }
  }

  /** A GET to kapi with the user's access token; kapi's `{ msg, code }` errors become ours. */
  private async kapi(path: string, accessToken: string): Promise<Record<string, unknown>> {
    const configuration = await this.discover()
    let response: Response
    try {
      response = await oidc.fetchProtectedResource(configuration, accessToken, new URL(`${this.settings.apiUrl}${path}`), 'GET')
    } catch (error) {
      // kapi's 401 comes with `WWW-Authenticate: Bearer error=invalid_token`; its body is still unread.
      if (!(error instanceof oidc.WWWAuthenticateChallengeError)) throw await classifyKakaoFailure(error)
      response = error.response
    }
    const text = await response.text()
    if (response.ok) return parseKakaoJson(text, path)
    const code = kapiErrorCode(text)
    const what = `kapi ${path} answered HTTP ${response.status}${code !== undefined ? ` code ${code}` : ''}`
    if (response.status === 401 || code === -401) {
      // The token is unknown, expired, or the user unlinked the app: the client must log in again.
      throw new InvalidGrant('the Kakao access token is not valid (expired, logged out or unlinked)', { detail: what })
    }
    if (response.status === 403 || code === -402) {
      throw new ProviderError('kakao withheld the profile: a consent item is missing', {
        detail: `${what}: the app lacks permission for a consent item; check Kakao Developers > Kakao Login > Consent items`,
      })
    }
    if (response.status === 400 && code === -2) throw new InvalidGrant('the Kakao access token is malformed', { detail: what })
    if (response.status === 429 || code === -10) {
      throw new ProviderError('kakao is rate limiting this app', { detail: `${what}: Kakao API quota exceeded; check the app's quota in Kakao Developers` })
    }
    throw new ProviderError(`kakao answered HTTP ${response.status}`, { detail: what })
  }
}

// ---------------------------------------------------------------------------
// Failures

/**
 * Kakao's documented error codes, which the metrics count by name (any other folds into
 * `other`): kauth's KOE codes (token endpoint and authorize pages) and kapi's numeric codes.
 */
const KAKAO_ERROR_CODES = ['KOE004', 'KOE006', 'KOE010', 'KOE101', 'KOE205', 'KOE237', 'KOE303', 'KOE320', 'KOE322', '-2', '-10', '-101', '-401', '-402']

const OPERATOR_HINTS: Record<string, { error: 'grant' | 'provider'; message: string; detail: string }> = {
  KOE320: { error: 'grant', message: 'kakao rejected the authorization code', detail: 'Kakao KOE320: the code was already used or has expired' },
  KOE303: { error: 'grant', message: 'kakao rejected the authorization code', detail: 'Kakao KOE303: redirect_uri differs from the one used at authorize' },
  KOE322: { error: 'grant', message: 'kakao rejected the refresh token', detail: 'Kakao KOE322: the refresh token expired or is invalid' },
  KOE010: {
    error: 'provider',
    message: 'kakao refused our client credentials',
    detail: 'Kakao KOE010 (Bad client credentials): check KAKAO_CLIENT_SECRET; it must be the client secret in Kakao Developers > Kakao Login > Security, or unset only when the secret is turned off there',
  },
  KOE101: {
    error: 'provider',
    message: 'kakao does not know our app key',
    detail: 'Kakao KOE101: check KAKAO_CLIENT_ID; it must be the REST API key of the app in Kakao Developers > App keys',
  },
  KOE237: {
    error: 'provider',
    message: 'kakao is rate limiting this app',
    detail: 'Kakao KOE237: token request rate limit exceeded; check the app quota in Kakao Developers',
  },
}

async function classifyKakaoFailure(error: unknown): Promise<Error> {
  let body: unknown
  let status: number | undefined
  if (error instanceof oidc.ResponseBodyError) {
    body = error.cause
    status = error.status
  } else if (error instanceof oidc.WWWAuthenticateChallengeError) {
    // A kauth 401 with a challenge: read the KOE body, it says which credential is wrong.
    status = error.status
    body = await error.response.json().catch(() => undefined)
  }
  if (body !== undefined || status !== undefined) {
    const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {}
    const code = typeof fields.error_code === 'string' ? fields.error_code : undefined
    const hint = code ? OPERATOR_HINTS[code] : undefined
    if (hint) {
      return hint.error === 'grant'
        ? new InvalidGrant(hint.message, { cause: error, detail: hint.detail })
        : new ProviderError(hint.message, { cause: error, detail: hint.detail })
    }
    if (fields.error === 'invalid_client' || status === 401) {
      return new ProviderError('kakao refused our client credentials', {
        cause: error,
        detail: `Kakao ${String(fields.error ?? `HTTP ${status}`)}${code ? ` ${code}` : ''}: check KAKAO_CLIENT_ID (the REST API key) and KAKAO_CLIENT_SECRET`,
      })
    }
  }
  const classified = classifyProviderFailure('kakao', error)
  if (classified instanceof ProviderError && classified.detail === undefined) {
    return new ProviderError(classified.message, { cause: error, detail: `kakao call failed: ${describeCauses(error)}` })
  }
  return classified
}

/** kapi's `{ msg, code }`: the code, when the body is one. */
function kapiErrorCode(text: string): number | undefined {
  try {
    const body = JSON.parse(text) as unknown
    const code = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).code : undefined
    return typeof code === 'number' ? code : undefined
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------
// Responses: bounded in size, and ids read exactly

/**
 * Kakao's JSON, parsed keeping every digit of its numbers (member ids are Longs sent as raw
 * JSON numbers; JSON.parse would round them past 2^53) and refusing duplicate keys.
 */
function parseKakaoJson(text: string, path: string): Record<string, unknown> {
  let value: unknown
  try {
    value = parseLossless(text)
  } catch {
    throw new ProviderError('kakao sent a malformed response', { detail: `${path} answered with a body that is not JSON` })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProviderError('kakao sent a malformed response', { detail: `${path} answered with JSON that is not an object` })
  }
  return value as Record<string, unknown>
}

/** A JSON number's exact decimal text (or a string as sent). */
function digitsOf(value: unknown): string | undefined {
  if (isLosslessNumber(value)) return value.value
  return typeof value === 'string' ? value : undefined
}

/** A member number, exactly as written. */
function exactMember(value: unknown, path: string): string {
  const digits = digitsOf(value)
  if (digits === undefined || !MEMBER_ID.test(digits)) {
    throw new ProviderError('kakao sent a malformed response', {
      detail: `${path} has ${digits === undefined ? 'no id' : `an id that is not a member number: ${digits.slice(0, 40)}`}`,
    })
  }
  return digits
}

/** A nested JSON object member, or undefined. */
function objectAt(value: unknown, key: string): Record<string, unknown> | undefined {
  const inner = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined
  return typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as Record<string, unknown>) : undefined
}
