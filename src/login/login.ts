// Login: prove an external identity with the provider, then either sign in the user it is
// linked to, create the account when the provider told us every required field, or hand
// out a signup ticket. Order matters: nothing is written before the provider vouched.

import type { ProfileField } from '../config.js'
import { GatewayError, IdentityAlreadyLinked, InvalidRedirectUri, InvalidRequest, InvalidState } from '../errors.js'
import { hashSecret, randomSecret } from '../secrets.js'
import type { ProviderRegistry } from '../../providers/registry.js'
import type { ProviderProfile } from '../../providers/types.js'
import type { PublicUser, UserDirectory } from '../identity/users.js'
import type { SessionClient } from '../sessions/refresh-sessions.js'
import type { SessionTokens, TokenSet } from '../sessions/session-tokens.js'
import type { SignupTickets } from '../signup/signup-tickets.js'
import type { LoginTransactions } from './login-transactions.js'
import type { UsedIdTokens } from './used-id-tokens.js'
import type { UserScopes } from '../identity/user-scopes.js'
import { undoInBackground } from '../storage/storage-budget.js'

export interface CodeLogin {
  code: string
  redirectUri: string
  /** From POST /auth/login/start: the gateway holds verifier and nonce. */
  state?: string
  /** A native app's own PKCE run. */
  codeVerifier?: string
  nonce?: string
}

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
  transactions: LoginTransactions
  /** Checks an RFC 8707 resource before anything else happens. */
  scopes: Pick<UserScopes, 'checkResource'>
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
export type LoginEnding = LoginOutcome['status'] | { refused: string }

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
}

/** What the provider sent back to /auth/callback/{provider}. */
export interface ProviderCallback {
  state: string
  code?: string
  /** e.g. access_denied when the user cancelled at the provider. */
  error?: string
}

export type RedirectOutcome = { returnTo: string } & (
  | { outcome: LoginOutcome }
  | { error: string }
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

  loginWithCode(providerName: string, credential: CodeLogin, client: ClientContext): Promise<LoginOutcome> {
    return this.counted(providerName, () => this.codeLogin(providerName, credential, client), statusOf)
  }

  private async codeLogin(providerName: string, credential: CodeLogin, client: ClientContext): Promise<LoginOutcome> {
    const provider = this.deps.providers.get(providerName)
    this.checkRedirectUri(credential.redirectUri)
    await this.deps.scopes.checkResource(client.resource)
    let { codeVerifier, nonce } = credential
    if (credential.state !== undefined) {
      const transaction = await this.deps.transactions.consume(credential.state)
      // A state is good once, for the provider and redirect URI it was started with (RFC 9700 §4.4, §4.7).
      if (!transaction || transaction.provider !== provider.name || transaction.redirectUri !== credential.redirectUri) {
        throw new InvalidState('the state is unknown, used, expired, or belongs to another login')
      }
      ;({ codeVerifier, nonce } = transaction)
    }
    const profile = await provider.exchangeCode({ code: credential.code, redirectUri: credential.redirectUri, codeVerifier, nonce, state: credential.state })
    return this.signInIdentity(provider.name, profile, client)
  }

  /** An ID token from a native SDK: verified against the provider's keys, and accepted once. */
  loginWithIdToken(providerName: string, idToken: string, nonce: string | undefined, client: ClientContext): Promise<LoginOutcome> {
    return this.counted(providerName, () => this.idTokenLogin(providerName, idToken, nonce, client), statusOf)
  }

  private async idTokenLogin(providerName: string, idToken: string, nonce: string | undefined, client: ClientContext): Promise<LoginOutcome> {
    const provider = this.deps.providers.get(providerName)
    if (!provider.verifyIdToken) throw new InvalidRequest(`${provider.name} does not issue ID tokens; send a code or an accessToken`)
    await this.deps.scopes.checkResource(client.resource)
    const verified = await provider.verifyIdToken(idToken, nonce)
    // Reserved only now: a token the client got wrong never costs a write. From here on the
    // provider has vouched, so any failure is ours and gives the token back for a retry.
    const reservation = await this.deps.usedIdTokens.reserve(idToken, verified.expiresAt)
    try {
      const outcome = await this.signInIdentity(provider.name, verified.profile, client)
      await reservation.spend()
      return outcome
    } catch (error) {
      // If even the release fails (Redis lost), the reservation runs out by itself.
      undoInBackground(() => reservation.release())
      throw error
    }
  }

  /** A provider access token from a native SDK: the adapter checks it was issued to our app. */
  loginWithAccessToken(providerName: string, accessToken: string, client: ClientContext): Promise<LoginOutcome> {
    return this.counted(providerName, () => this.accessTokenLogin(providerName, accessToken, client), statusOf)
  }

  private async accessTokenLogin(providerName: string, accessToken: string, client: ClientContext): Promise<LoginOutcome> {
    const provider = this.deps.providers.get(providerName)
    if (!provider.verifyAccessToken) throw new InvalidRequest(`${provider.name} does not accept access tokens; send a code or an idToken`)
    await this.deps.scopes.checkResource(client.resource)
    return this.signInIdentity(provider.name, await provider.verifyAccessToken(accessToken), client)
  }

  /**
   * The server-side redirect flow: the provider sends the browser back to the gateway's
   * own callback, never to the app with a code. The transaction is bound to the browser
   * by a cookie, so an attacker cannot finish their login in a victim's browser (RFC 9700 §4.7).
   */
  async startRedirect(providerName: string, returnTo: string): Promise<StartedRedirect> {
    const provider = this.deps.providers.get(providerName)
    this.checkReturnTo(returnTo)
    const browserBinding = randomSecret()
    const redirectUri = this.callbackUri(provider.name)
    const started = await this.deps.transactions.begin({
      provider: provider.name,
      redirectUri,
      returnTo,
      browserBindingHash: hashSecret(browserBinding),
    })
    const authorizationUrl = await provider.buildAuthorizationUrl({ redirectUri, ...started })
    return { authorizationUrl: authorizationUrl.href, browserBinding, expiresIn: started.expiresIn }
  }

  finishRedirect(
    providerName: string,
    callback: ProviderCallback,
    browserBinding: string | undefined,
    client: ClientContext,
  ): Promise<RedirectOutcome> {
    // The refusals this flow hands back to the app (a cancel at the provider too) count as refusals.
    const endingOf = (result: RedirectOutcome): LoginEnding => ('error' in result ? { refused: result.error } : result.outcome.status)
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
    const { returnTo } = transaction
    if (callback.error !== undefined || callback.code === undefined) {
      return { returnTo, error: callback.error === 'access_denied' ? 'access_denied' : 'provider_error' }
    }
    try {
      const profile = await provider.exchangeCode({
        code: callback.code,
        redirectUri: transaction.redirectUri,
        codeVerifier: transaction.codeVerifier,
        nonce: transaction.nonce,
        state: callback.state,
      })
      return { returnTo, outcome: await this.signInIdentity(provider.name, profile, client) }
    } catch (error) {
      // The browser is mid-navigation: send it back to the app with the error code only.
      if (error instanceof GatewayError) return { returnTo, error: error.code }
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

  /** The part every credential kind shares once the provider has vouched for `profile`. */
  async signInIdentity(provider: string, profile: ProviderProfile, client: ClientContext): Promise<LoginOutcome> {
    const identity = { provider, subject: profile.subject }
    const existing = await this.deps.users.findByIdentity(identity)
    if (existing) return this.authenticated(existing, false, client)

    const { subject: _subject, ...known } = profile
    const missing = this.deps.signupRequiredFields.filter((field) => !known[field])
    if (missing.length > 0 || !known.nickname) {
      const ticket = await this.deps.tickets.issue({ provider, subject: profile.subject, profile: known })
      return { status: 'signup_required', ...ticket, profile: known, missing: missing.length > 0 ? missing : ['nickname'] }
    }
    try {
      const user = await this.deps.users.createWithIdentity({ ...known, nickname: known.nickname }, identity)
      return this.authenticated(user, true, client)
    } catch (error) {
      // A parallel first login of the same identity won the race: sign in as that user.
      if (!(error instanceof IdentityAlreadyLinked)) throw error
      const winner = await this.deps.users.findByIdentity(identity)
      if (!winner) throw error
      return this.authenticated(winner, false, client)
    }
  }

  private async authenticated(user: PublicUser, isNewUser: boolean, client: ClientContext): Promise<LoginOutcome> {
    const tokens = await this.deps.sessionTokens.startSession(user.id, client)
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
