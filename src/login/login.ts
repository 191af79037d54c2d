// Login: prove an external identity with the provider, then either sign in the user it is
// linked to, create the account when the provider told us every required field, or hand
// out a signup ticket. Order matters: nothing is written before the provider vouched.

import type { ProfileField } from '../common/profile-text.js'
import { GatewayError, IdentityAlreadyLinked, InvalidRedirectUri, InvalidRequest, InvalidState } from '../common/errors.js'
import { hashSecret, randomSecret } from '../common/secrets.js'
import type { ProviderRegistry } from '../../providers/registry.js'
import type { GivenName, IdentityProvider, ProviderProfile, SubjectVouched } from '../../providers/types.js'
import type { PublicUser, ReturningUser, UserDirectory } from '../identity/users.js'
import type { SessionClient } from '../sessions/refresh-sessions.js'
import type { SessionTokens, TokenSet } from '../sessions/session-tokens.js'
import type { SignupTickets } from '../signup/signup-tickets.js'
import type { LoginTransactions } from './login-transactions.js'
import type { UsedIdTokens } from './used-id-tokens.js'
import type { UserScopes } from '../identity/user-scopes.js'
import type { IdentityLinks } from '../identity/identity-links.js'
import type { LinkedIdentity } from '../identity/users.js'
import type { RequestOrigin } from '../audit/audit-log.js'
import { nameOf } from '../../providers/profile-fields.js'
import { undoInBackground } from '../storage/redis.js'

const ADMITTED: Promise<void> = Promise.resolve()

/** What proves a provider identity: the credentials POST /auth/login and POST /auth/identities take. */
export type ProviderCredential =
  | {
      kind: 'code'
      code: string
      redirectUri: string
      /** From POST /auth/login/start: the gateway holds verifier and nonce. */
      state?: string
      /** A native app's own PKCE run. */
      codeVerifier?: string
      nonce?: string
    }
  /** `code`: the authorization code of the same native sign-in (Apple), for the provider's grant. */
  | { kind: 'idToken'; idToken: string; nonce?: string; code?: string }
  | { kind: 'accessToken'; accessToken: string }

/** Who is logging in from where: decides where the refresh token goes. */
export type ClientContext = SessionClient

export type LoginOutcome =
  | { status: 'authenticated'; tokens: TokenSet; user: PublicUser; isNewUser: boolean }
  | {
      status: 'signup_required'
      signupToken: string
      expiresIn: number
      profile: Omit<ProviderProfile, 'subject'>
      missing: ProfileField[]
    }

export interface LoginDependencies {
  providers: ProviderRegistry
  /** Links proved identities to accounts and keeps their provider grants. */
  links: IdentityLinks
  transactions: LoginTransactions
  /** Checks an RFC 8707 resource before anything else happens. */
  scopes: Pick<UserScopes, 'checkResource' | 'resourceOf'>
  usedIdTokens: UsedIdTokens
  users: UserDirectory
  tickets: SignupTickets
  sessionTokens: SessionTokens
  allowedRedirectUris: readonly string[]
  signupRequiredFields: readonly ProfileField[]
  /** The gateway's public base URL: the redirect flow's callback lives under it. */
  publicUrl: string
  /** Origins a redirect-flow `returnTo` may point at. */
  webOrigins: readonly string[]
  /** Hears how each login ended (the metrics). */
  observer?: LoginObserver
}

/** How a login ended: signed in, sent to signup, or refused with the contract's error code. */
export type LoginEnding = LoginOutcome['status'] | 'linked' | { refused: string }

export interface LoginObserver {
  /** `provider` is the name the client sent, known or not. */
  loginFinished(provider: string, ending: LoginEnding): void
}

/** A redirect-flow login the browser must finish at the provider. */
export interface StartedRedirect {
  authorizationUrl: string
  /** Secret for the browser-binding cookie; only its hash is kept. */
  browserBinding: string
  expiresIn: number
  /** The provider POSTs the callback cross-site (form_post): the binding cookie must allow that. */
  formPost: boolean
}

/** What the provider sent back to /auth/callback/{provider}. */
export interface ProviderCallback {
  state: string
  code?: string
  /** e.g. access_denied when the user cancelled at the provider. */
  error?: string
  /** Apple's form_post `user`: the name, sent on the first authorization only. */
  user?: string
}

/** How a redirect flow ended: a login, an identity linked to the user who started it, or an error code for the app. */
export type RedirectOutcome = { returnTo: string } & (
  | { outcome: LoginOutcome }
  | { linked: string }
  | { error: string; linking?: true }
)

export class LoginService {
  constructor(private readonly deps: LoginDependencies) {}

  /** Starts a login the gateway will finish: state, nonce and PKCE stay server-side. */
  async start(providerName: string, redirectUri: string) {
    const provider = this.deps.providers.get(providerName)
    this.checkRedirectUri(redirectUri)
    const started = await this.deps.transactions.begin({ provider: provider.name, redirectUri })
    const authorizationUrl = await provider.buildAuthorizationUrl({ redirectUri, ...started })
    return { authorizationUrl: authorizationUrl.href, state: started.state, expiresIn: started.expiresIn }
  }

  /**
   * A login with any credential. `name`: what a native app got from the provider on the
   * first authorization (Apple), used only for a new account's missing nickname.
   * `admission`: a verdict on the request still being reached (the rate limiter's count).
   * The login's state is claimed meanwhile and put back if it refuses; nothing else happens
   * before it admits the request.
   */
  login(providerName: string, credential: ProviderCredential, client: ClientContext, name?: GivenName, admission: Promise<void> = ADMITTED): Promise<LoginOutcome> {
    return this.counted(
      providerName,
      async () => {
        const provider = this.deps.providers.get(providerName)
        // Only a provider that hands the name to the app outside its tokens (Apple) takes one from the app.
        if (name !== undefined && !provider.nameFromCallback) throw new InvalidRequest(`${provider.name} supplies the profile itself; send no name`)
        // An unknown resource is refused before the state is spent, as before the provider is called.
        const admitted = admission.then(() => this.deps.scopes.checkResource(client.resource))
        admitted.catch(() => {}) // awaited below, unless a refusal of the credential's shape comes first
        const lookup = this.accountLookup(provider.name, client)
        return this.withProvenIdentity(provider, credential, (profile) => this.signInIdentity(provider.name, withName(profile, name), client, lookup), lookup.vouched, admitted)
      },
      statusOf,
    )
  }

  /** Links the identity `credential` proves to the user; returns the user's identities. */
  async link(userId: string, providerName: string, credential: ProviderCredential, origin: RequestOrigin): Promise<LinkedIdentity[]> {
    const provider = this.deps.providers.get(providerName)
    return this.withProvenIdentity(provider, credential, (profile) => this.deps.links.link(userId, provider.name, profile, origin))
  }

  /**
   * Has the provider vouch for the credential, then runs `then` with the profile. Nothing
   * is written before the provider vouched, and the provider is not asked before `admitted`.
   * An ID token is accepted once: reserved after verification, given back when `then` fails
   * (the failure is ours, the token still good).
   */
  private async withProvenIdentity<T>(
    provider: IdentityProvider,
    credential: ProviderCredential,
    then: (profile: ProviderProfile) => Promise<T>,
    vouched?: SubjectVouched,
    admitted = ADMITTED,
  ): Promise<T> {
    switch (credential.kind) {
      case 'code':
        return then(await this.exchangeCode(provider, credential, vouched, admitted))
      case 'accessToken':
        if (!provider.verifyAccessToken) throw new InvalidRequest(`${provider.name} does not accept access tokens; send a code or an idToken`)
        await admitted
        return then(await provider.verifyAccessToken(credential.accessToken, vouched))
      case 'idToken': {
        if (!provider.verifyIdToken) throw new InvalidRequest(`${provider.name} does not issue ID tokens; send a code or an accessToken`)
        if (credential.code !== undefined && !provider.acceptsNativeCode) {
          throw new InvalidRequest(`${provider.name} takes an idToken alone; send a code as its own credential`)
        }
        await admitted
        const verified = await provider.verifyIdToken(credential.idToken, credential.nonce, credential.code)
        const reservation = await this.deps.usedIdTokens.reserve(credential.idToken, verified.expiresAt)
        try {
          const result = await then(verified.profile)
          await reservation.spend()
          return result
        } catch (error) {
          // If even the release fails (Redis lost), the reservation runs out by itself.
          undoInBackground(() => reservation.release())
          throw error
        }
      }
    }
  }

  private async exchangeCode(
    provider: IdentityProvider,
    credential: Extract<ProviderCredential, { kind: 'code' }>,
    vouched: SubjectVouched | undefined,
    admitted: Promise<void>,
  ): Promise<ProviderProfile> {
    this.checkRedirectUri(credential.redirectUri)
    let { codeVerifier, nonce } = credential
    if (credential.state === undefined) await admitted
    else {
      const transaction = await this.deps.transactions.consume(credential.state, admitted)
      // A state is good once, for the provider and redirect URI it was started with (RFC 9700 §4.4, §4.7).
      if (!transaction || transaction.provider !== provider.name || transaction.redirectUri !== credential.redirectUri || transaction.linkUserId !== undefined) {
        throw new InvalidState('the state is unknown, used, expired, or belongs to another login')
      }
      ;({ codeVerifier, nonce } = transaction)
    }
    return provider.exchangeCode({ code: credential.code, redirectUri: credential.redirectUri, codeVerifier, nonce, state: credential.state }, vouched)
  }

  /**
   * The server-side redirect flow: the provider sends the browser back to the gateway's
   * own callback, never to the app with a code. The transaction is bound to the browser
   * by a cookie, so an attacker cannot finish their login in a victim's browser (RFC 9700 §4.7).
   * `linkUserId`: the flow links the identity to that user instead of logging in.
   */
  async startRedirect(providerName: string, returnTo: string, linkUserId?: string): Promise<StartedRedirect> {
    const provider = this.deps.providers.get(providerName)
    this.checkReturnTo(returnTo)
    const browserBinding = randomSecret()
    const redirectUri = this.callbackUri(provider.name)
    const started = await this.deps.transactions.begin({
      provider: provider.name,
      redirectUri,
      returnTo,
      browserBindingHash: hashSecret(browserBinding),
      linkUserId,
    })
    const authorizationUrl = await provider.buildAuthorizationUrl({ redirectUri, ...started })
    return { authorizationUrl: authorizationUrl.href, browserBinding, expiresIn: started.expiresIn, formPost: provider.responseMode === 'form_post' }
  }

  finishRedirect(
    providerName: string,
    callback: ProviderCallback,
    browserBinding: string | undefined,
    client: ClientContext,
  ): Promise<RedirectOutcome> {
    // The refusals this flow hands back to the app (a cancel at the provider too) count as
    // refusals; a link is no login and is not counted as one.
    const endingOf = (result: RedirectOutcome): LoginEnding =>
      'error' in result ? { refused: result.error } : 'linked' in result ? 'linked' : result.outcome.status
    return this.counted(providerName, () => this.redirectLogin(providerName, callback, browserBinding, client), endingOf)
  }

  private async redirectLogin(
    providerName: string,
    callback: ProviderCallback,
    browserBinding: string | undefined,
    client: ClientContext,
  ): Promise<RedirectOutcome> {
    const provider = this.deps.providers.get(providerName)
    const transaction = await this.deps.transactions.consume(callback.state)
    if (
      !transaction?.returnTo ||
      transaction.provider !== provider.name ||
      browserBinding === undefined ||
      transaction.browserBindingHash !== hashSecret(browserBinding)
    ) {
      throw new InvalidState('the state is unknown, used, expired, or was started in another browser')
    }
    const { returnTo, linkUserId } = transaction
    const linking = linkUserId !== undefined ? ({ linking: true } as const) : {}
    if (callback.error !== undefined || callback.code === undefined) {
      return { returnTo, error: callback.error === 'access_denied' || callback.error === 'user_cancelled_authorize' ? 'access_denied' : 'provider_error', ...linking }
    }
    const lookup = linkUserId === undefined ? this.accountLookup(provider.name, client) : undefined
    try {
      const profile = await provider.exchangeCode(
        { code: callback.code, redirectUri: transaction.redirectUri, codeVerifier: transaction.codeVerifier, nonce: transaction.nonce, state: callback.state },
        lookup?.vouched,
      )
      if (linkUserId !== undefined) {
        await this.deps.links.link(linkUserId, provider.name, profile, { ip: client.ip, userAgent: client.label })
        return { returnTo, linked: provider.name }
      }
      const name = callback.user === undefined ? undefined : provider.nameFromCallback?.(callback.user)
      return { returnTo, outcome: await this.signInIdentity(provider.name, withName(profile, name), client, lookup) }
    } catch (error) {
      // The browser is mid-navigation: send it back to the app with the error code only.
      if (error instanceof GatewayError) return { returnTo, error: error.code, ...linking }
      throw error
    }
  }

  /** Runs one login and tells the observer how it ended, thrown refusals included. */
  private async counted<T>(providerName: string, login: () => Promise<T>, endingOf: (result: T) => LoginEnding): Promise<T> {
    const { observer } = this.deps
    if (!observer) return login()
    let result: T
    try {
      result = await login()
    } catch (error) {
      observer.loginFinished(providerName, { refused: error instanceof GatewayError ? error.code : 'internal_error' })
      throw error
    }
    observer.loginFinished(providerName, endingOf(result))
    return result
  }

  private callbackUri(providerName: string): string {
    return `${this.deps.publicUrl}/auth/callback/${providerName}`
  }

  private checkReturnTo(returnTo: string): void {
    let origin: string
    try {
      origin = new URL(returnTo).origin
    } catch {
      throw new InvalidRequest('returnTo must be an absolute URL')
    }
    if (!this.deps.webOrigins.includes(origin)) throw new InvalidRequest('returnTo must be on an allowed web origin')
  }

  /** Looks up the account of the subject the provider vouches for, once or early (AccountLookup). */
  private accountLookup(provider: string, client: ClientContext): AccountLookup {
    return new AccountLookup((subject) => this.deps.users.findReturning({ provider, subject }, this.deps.scopes.resourceOf(client.resource)))
  }

  /** The part every credential kind shares once the provider has vouched for `profile`. */
  private async signInIdentity(provider: string, profile: ProviderProfile, client: ClientContext, lookup = this.accountLookup(provider, client)): Promise<LoginOutcome> {
    const identity = { provider, subject: profile.subject }
    const returning = await lookup.find(profile.subject)
    if (returning) {
      // The provider's newest grant is written while the session's row and signature are
      // made, not before them; the session is stored only once it is kept.
      const grantKept = profile.grant ? this.deps.links.keepGrant(identity, profile.grant) : undefined
      // Handled: its failure is thrown where the session is started, or lost with a failure before that.
      grantKept?.catch(() => {})
      return this.authenticated(returning.user, false, client, returning.scopes, grantKept)
    }

    const { subject: _subject, grant: _grant, ...known } = profile
    const toLink = await this.deps.links.toLink(provider, profile)
    const missing = this.deps.signupRequiredFields.filter((field) => !known[field])
    if (missing.length > 0 || !known.nickname) {
      const ticket = await this.deps.tickets.issue({ provider, subject: profile.subject, profile: known, sealedGrant: toLink.sealedGrant })
      return { status: 'signup_required', ...ticket, profile: known, missing: missing.length > 0 ? missing : ['nickname'] }
    }
    try {
      const user = await this.deps.users.createWithIdentity({ ...known, nickname: known.nickname }, toLink)
      return this.authenticated(user, true, client)
    } catch (error) {
      // A parallel first login (or a link) of the same identity won the race: sign in as its owner.
      if (!(error instanceof IdentityAlreadyLinked)) throw error
      const winner = await this.deps.users.findByIdentity(identity)
      if (!winner) throw error
      return this.authenticated(winner, false, client)
    }
  }

  /** `scopes`: the user's, read with the user; otherwise the session reads them. `alongside`: see startSession. */
  private async authenticated(user: PublicUser, isNewUser: boolean, client: ClientContext, scopes?: string[], alongside?: Promise<void>): Promise<LoginOutcome> {
    const tokens = await this.deps.sessionTokens.startSession(user.id, client, scopes, alongside)
    return { status: 'authenticated', tokens, user, isNewUser }
  }

  private checkRedirectUri(redirectUri: string): void {
    // Exact string comparison against the allow-list (RFC 9700 §4.1.3): no prefixes, no patterns.
    if (!this.deps.allowedRedirectUris.includes(redirectUri)) {
      throw new InvalidRedirectUri('the redirect URI is not allowed')
    }
  }
}

const statusOf = (outcome: LoginOutcome): LoginEnding => outcome.status

/**
 * A login's account lookup, started as soon as the provider vouched for the subject, before
 * its profile is read (Kakao: the ID token, then /v2/user/me only for a subject without an
 * account). It only reads: nothing is written before the whole exchange succeeded, and an
 * exchange that fails leaves its result unread.
 */
class AccountLookup {
  private early?: { subject: string; found: Promise<ReturningUser | undefined> }

  constructor(private readonly lookUp: (subject: string) => Promise<ReturningUser | undefined>) {}

  readonly vouched: SubjectVouched = (subject) => {
    const found = this.lookUp(subject)
    this.early = { subject, found }
    // A failed lookup says "not known": the provider reads the profile, and find() throws the failure.
    return found.then((user) => user !== undefined, () => false)
  }

  /** The early lookup when it was for this subject, else a lookup now. */
  find(subject: string): Promise<ReturningUser | undefined> {
    return this.early?.subject === subject ? this.early.found : this.lookUp(subject)
  }
}

/** The provider's profile, with a nickname made from the name the app passed when the provider gave none. */
function withName(profile: ProviderProfile, name: GivenName | undefined): ProviderProfile {
  if (profile.nickname !== undefined || name === undefined) return profile
  const nickname = nameOf(name)
  return nickname === undefined ? profile : { ...profile, nickname }
}
