// Sign in with Apple (developer.apple.com/documentation/sign_in_with_apple). An OpenID
// Connect provider with its own habits, all kept here:
//   - the client_secret is an ES256 JWT signed with the developer's .p8 key, made per
//     client id (apple-client-secret.ts);
//   - web: asking for the name or email scope forces response_mode=form_post, so Apple
//     POSTs the callback; the name arrives once, in that POST, never in the ID token;
//   - native (iOS): the app brings the identityToken (aud = its bundle ID) and may bring
//     the authorizationCode, which the gateway exchanges as that bundle ID so it holds
//     Apple's refresh token, the only thing that can revoke the grant at deletion;
//   - an iOS app passes Apple the SHA-256 of its raw nonce: the token carries the hash;
//   - email_verified and is_private_email come as booleans or as "true"/"false".

import { createHash, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as oidc from 'openid-client'
import { InvalidGrant, InvalidRequest } from '../src/common/errors.js'
import { splitList } from '../src/common/env-values.js'
import { AppleClientSecrets, APPLE_MAX_CLIENT_SECRET_SECONDS } from './apple-client-secret.js'
import { OpenIdConnectProvider, type OpenIdConnectSettings } from './openid-connect.js'
import { emailOf } from './profile-fields.js'
import { readProviderUrl } from './settings.js'
import type { AuthorizationRequest, CodeCredential, GivenName, ProviderNotice, ProviderDefinition, ProviderProfile, ProviderRuntime, VerifiedIdToken } from './types.js'

export interface AppleSettings extends OpenIdConnectSettings {
  teamId: string
  keyId: string
  privateKey: KeyObject
  clientSecretLifetimeSeconds: number
}

/** How old a server notification may be: older ones are refused, and jti are remembered this long. */
const NOTICE_MAX_AGE_SECONDS = 60 * 60

/** Thirty days: well inside Apple's six-month limit, renewed after fifteen. */
const DEFAULT_CLIENT_SECRET_SECONDS = 30 * 24 * 60 * 60

export const apple: ProviderDefinition<AppleSettings> = {
  name: 'apple',
  readSettings(env, problems, production) {
    const clientId = env.APPLE_CLIENT_ID?.trim()
    if (!clientId) return undefined
    const teamId = env.APPLE_TEAM_ID?.trim() ?? ''
    const keyId = env.APPLE_KEY_ID?.trim() ?? ''
    if (!/^[A-Z0-9]{10}$/.test(teamId)) problems.push('APPLE_TEAM_ID must be the 10-character Team ID (Apple Developer > Membership)')
    if (!/^[A-Z0-9]{10}$/.test(keyId)) problems.push('APPLE_KEY_ID must be the 10-character id of the Sign in with Apple key')
    const privateKey = readApplePrivateKey(env.APPLE_PRIVATE_KEY, problems)
    const lifetime = env.APPLE_CLIENT_SECRET_TTL?.trim()
    const clientSecretLifetimeSeconds = lifetime === undefined || lifetime === '' ? DEFAULT_CLIENT_SECRET_SECONDS : Number(lifetime)
    if (!Number.isInteger(clientSecretLifetimeSeconds) || clientSecretLifetimeSeconds < 2 || clientSecretLifetimeSeconds > APPLE_MAX_CLIENT_SECRET_SECONDS) {
      problems.push(`APPLE_CLIENT_SECRET_TTL must be a whole number of seconds from 2 to ${APPLE_MAX_CLIENT_SECRET_SECONDS}`)
    }
    const issuer = readProviderUrl(env, 'APPLE_ISSUER', 'https://appleid.apple.com', problems, production)
    return {
      issuer,
      clientId,
      clientSecret: '',
      // Apple's scopes; `openid` is implied and not one of them.
      scope: 'name email',
      audiences: [clientId, ...splitList(env.APPLE_AUDIENCES)],
      teamId,
      keyId,
      privateKey: privateKey!,
      clientSecretLifetimeSeconds,
    }
  },
  create: (settings, runtime) => new AppleProvider(settings, runtime),
}

/** The .p8 key as PEM text or a path to the file; it must be an EC P-256 private key. */
function readApplePrivateKey(value: string | undefined, problems: string[]): KeyObject | undefined {
  const source = value?.trim()
  if (!source) {
    problems.push('APPLE_PRIVATE_KEY is required when APPLE_CLIENT_ID is set (the .p8 key, as PEM text or a file path)')
    return undefined
  }
  let pem = source
  if (!source.startsWith('-----BEGIN')) {
    try {
      pem = readFileSync(source, 'utf8')
    } catch {
      problems.push(`APPLE_PRIVATE_KEY: cannot read the file "${source}"`)
      return undefined
    }
  }
  try {
    const key = createPrivateKey(pem.replace(/\\n/g, '\n'))
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return key
  } catch {
    // reported below
  }
  problems.push('APPLE_PRIVATE_KEY is not an EC P-256 private key in PEM (the .p8 file Apple lets you download once)')
  return undefined
}

export class AppleProvider extends OpenIdConnectProvider {
  readonly responseMode = 'form_post'
  readonly acceptsNativeCode = true
  private readonly secrets: AppleClientSecrets
  /** Token-endpoint configurations for the bundle IDs whose native codes we exchange. */
  private readonly nativeConfigurations = new Map<string, Promise<oidc.Configuration>>()

  constructor(
    private readonly apple: AppleSettings,
    runtime: ProviderRuntime,
  ) {
    super('apple', apple, runtime)
    this.secrets = new AppleClientSecrets({ teamId: apple.teamId, keyId: apple.keyId, privateKey: apple.privateKey, lifetimeSeconds: apple.clientSecretLifetimeSeconds })
  }

  override async buildAuthorizationUrl(request: AuthorizationRequest): Promise<URL> {
    const url = await super.buildAuthorizationUrl(request)
    url.searchParams.set('response_mode', 'form_post')
    return url
  }

  override async exchangeCode(credential: CodeCredential): Promise<ProviderProfile> {
    const { tokens, claims, signed } = await this.exchangeCodeForTokens(credential)
    if (!claims) throw new InvalidGrant('apple returned no ID token')
    await signed
    return { ...this.profileFromClaims(claims), grant: await this.grantToKeep(this.apple.clientId, tokens) }
  }

  /** A native sign-in; with its code, exchanged as the bundle ID the identity token was issued to. */
  override async verifyIdToken(idToken: string, nonce?: string, code?: string): Promise<VerifiedIdToken> {
    const verified = await super.verifyIdToken(idToken, nonce)
    if (code === undefined) return verified
    const configuration = await this.configurationFor(verified.audience)
    const tokens = await this.call(() => oidc.genericGrantRequest(configuration, 'authorization_code', { code }))
    // The code must come from the same sign-in: another person's code would hand us their grant.
    if (tokens.claims()?.sub !== verified.profile.subject) throw new InvalidGrant('the apple authorization code belongs to another sign-in')
    return { ...verified, profile: { ...verified.profile, grant: await this.grantToKeep(verified.audience, tokens) } }
  }

  /**
   * A server-to-server notification: `{"payload": <JWS>}` signed by a key of Apple's JWKS,
   * iss = the issuer, aud = one of our client ids, a fresh iat, a jti (heard once: the
   * domain remembers it), and `events`, a JSON string `{type, sub, event_time}`.
   */
  async readNotice(notice: { fields: Record<string, unknown> }): Promise<ProviderNotice> {
    const { payload } = notice.fields
    if (typeof payload !== 'string') throw new InvalidRequest('payload must be the notification JWS')
    const claims = await this.verifySignedByProvider(payload, { requiredClaims: ['iat', 'jti', 'events'], maxTokenAge: `${NOTICE_MAX_AGE_SECONDS}s` })
    let events: { type?: unknown; sub?: unknown }
    try {
      events = typeof claims.events === 'string' ? JSON.parse(claims.events) : {}
    } catch {
      throw new InvalidRequest('the notification events are not JSON')
    }
    const { type, sub } = events ?? {}
    if (typeof type !== 'string' || typeof sub !== 'string' || sub === '' || sub.length > 255) {
      throw new InvalidRequest('the notification names no event type or subject')
    }
    if (typeof claims.jti !== 'string' || claims.jti === '' || claims.jti.length > 255) throw new InvalidRequest('the notification has no usable jti')
    const event = type === 'consent-revoked' || type === 'account-delete' ? 'revoked' : type === 'email-disabled' || type === 'email-enabled' ? type : 'ignored'
    return { subject: sub, event, reason: type.slice(0, 64), once: { id: claims.jti, expiresAt: (claims.iat! + NOTICE_MAX_AGE_SECONDS) * 1000 } }
  }

  /** The form_post `user` field: `{"name":{"firstName","lastName"},"email"}`, on the first authorization only. */
  nameFromCallback(user: string): GivenName | undefined {
    let parsed: unknown
    try {
      parsed = JSON.parse(user)
    } catch {
      return undefined
    }
    const name = (parsed as { name?: { firstName?: unknown; lastName?: unknown } } | null)?.name
    if (typeof name !== 'object' || name === null) return undefined
    const text = (value: unknown) => (typeof value === 'string' ? value.slice(0, 100) : undefined)
    return { givenName: text(name.firstName), familyName: text(name.lastName) }
  }

  /** iOS apps hand Apple the SHA-256 (hex) of their raw nonce, and the gateway the raw one. */
  protected override nonceClaimFor(nonce: string | undefined): string | undefined {
    return nonce === undefined ? undefined : createHash('sha256').update(nonce).digest('hex')
  }

  protected override profileFromClaims(claims: oidc.IDToken): ProviderProfile {
    // Private relay addresses (…@privaterelay.appleid.com) are verified addresses too.
    const verified = claims.email_verified === true || claims.email_verified === 'true'
    return { subject: String(claims.sub), email: verified ? emailOf(claims.email) : undefined }
  }

  /** client_secret_post with the secret made for the client id of each request. */
  protected override clientAuthentication(): oidc.ClientAuth {
    // oauth4webapi awaits the client authentication step, so it may sign a new secret first.
    const authenticate = async (_server: unknown, client: oidc.ClientMetadata, body: URLSearchParams) => {
      body.set('client_id', client.client_id)
      body.set('client_secret', await this.secrets.for(client.client_id))
    }
    return authenticate as unknown as oidc.ClientAuth
  }

  /** The web Services ID's configuration, or one per bundle ID (each needs its own client_secret). */
  protected override configurationFor(clientId: string): Promise<oidc.Configuration> {
    if (clientId === this.apple.clientId) return this.discover()
    let configuration = this.nativeConfigurations.get(clientId)
    if (!configuration) {
      configuration = this.discover().then((web) => {
        const native = new oidc.Configuration(web.serverMetadata(), clientId, undefined, this.clientAuthentication())
        native.timeout = web.timeout
        native[oidc.customFetch] = this.http.fetch
        if (this.apple.issuer.startsWith('http:') && this.runtime.allowInsecureLoopback) oidc.allowInsecureRequests(native)
        oidc.enableNonRepudiationChecks(native)
        return native
      })
      configuration.catch(() => this.nativeConfigurations.delete(clientId))
      this.nativeConfigurations.set(clientId, configuration)
    }
    return configuration
  }
}
