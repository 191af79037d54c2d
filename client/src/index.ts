// A client for apps in front of the social-login gateway, in the browser (`platform: 'web'`)
// and in React Native or any other native app (`platform: 'native'`). It uses only `fetch`,
// `AbortController`, `setTimeout` and `URL`, so it runs in both, and has no dependencies.
//
// Web: the refresh token is the gateway's HttpOnly cookie, which this client never sees:
// every gateway call goes with `credentials: 'include'`, and the browser adds the page's
// `Origin`, which must be in the gateway's WEB_ORIGINS. Native: no `Origin` header, so the
// gateway answers the refresh token in the body; it is kept in the storage the app hands in
// (Keychain, Keystore, expo-secure-store) and nowhere else. The access token lives in memory
// only, on both.
//
// Refresh is single-flight: however many calls find the access token expired, or get a 401
// `invalid_token` from an API, one refresh request goes out and they all wait for it. A 503
// (or 429, 5xx, or no answer at all) is retried with exponential backoff and full jitter and
// never signs the user out; only a refused refresh token (401) ends the session here.

export type Platform = 'web' | 'native'

/** Where a native app keeps its refresh token: a secure store of the platform, never AsyncStorage or localStorage. */
export interface RefreshTokenStorage {
  get(): Promise<string | null | undefined>
  set(refreshToken: string): Promise<void>
  delete(): Promise<void>
}

/**
 * `unknown`: nothing asked yet (call `restore()` at start-up). `signed_in`: the client holds
 * a session (a refresh token or cookie), even while the gateway is unavailable.
 * `signed_out`: it holds none.
 */
export type SessionState = 'unknown' | 'signed_in' | 'signed_out'

/**
 * Why the client is signed out: `logout`, `logout_everywhere`, `account_deleted` (this app
 * did it), `session_ended` (the gateway refused the refresh token: logged out elsewhere,
 * revoked by an operator or a provider, expired, reused), or `no_session` (`restore()` found
 * none: nothing ended).
 */
export type SignedOutReason = 'logout' | 'logout_everywhere' | 'account_deleted' | 'session_ended' | 'no_session'

export type SessionEvent = { state: 'signed_in' } | { state: 'signed_out'; reason: SignedOutReason }

export interface RetryPolicy {
  /** Refresh attempts in all, the first included; default 6. */
  attempts: number
  /** The first backoff ceiling; each next one doubles, up to `maxDelayMs`; default 250 ms. */
  baseDelayMs: number
  /** Default 4000 ms. */
  maxDelayMs: number
}

export interface GatewayClientOptions {
  /** The gateway's PUBLIC_URL, e.g. `https://login.example.com`. */
  baseUrl: string
  platform: Platform
  /** Required on native: where the refresh token is kept. Not used on the web. */
  storage?: RefreshTokenStorage
  /** Called when a session ends (every reason but `no_session`); `subscribe` hears every change. */
  onSignedOut?: (reason: SignedOutReason) => void
  /** How a refresh (and a logout) is retried while the gateway is unavailable. */
  retry?: Partial<RetryPolicy>
  /** A gateway call without an answer after this long counts as a network failure; default 15000 ms. */
  timeoutMs?: number
  /** Default: the global `fetch`. */
  fetch?: typeof fetch
}

/**
 * What the gateway refused, as it said it: the HTTP `status` and its `{ error, message }`.
 * `status` 0 with `error: 'network_error'`: no answer at all (offline, timeout).
 */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
    /** Seconds the gateway asked to wait (Retry-After), when the browser lets the client read it. */
    readonly retryAfter?: number,
  ) {
    super(message)
    this.name = 'GatewayError'
  }

  /** Worth trying again later: no answer, 408, 429 or a 5xx. The session is not in question. */
  get transient(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500
  }
}

export interface PublicUser {
  id: string
  nickname: string
  email?: string
  photo?: string
}

export interface Identity {
  id: string
  provider: string
  linkedAt: string
  email?: string
}

export interface Me extends PublicUser {
  identities: Identity[]
}

export type SignupField = 'nickname' | 'email' | 'photo'
export type ProviderProfile = Partial<Record<SignupField, string>>

export type LoginResult =
  | { status: 'authenticated'; user: PublicUser; isNewUser: boolean }
  | {
      status: 'signup_required'
      /** Give it to `finishSignup`. Absent after the web redirect flow: the ticket is a cookie there. */
      signupToken?: string
      profile: ProviderProfile
      missing: SignupField[]
      expiresIn: number
    }

/** Where the web redirect flow ended, as `completeRedirect` reads it from the URL the browser came back to. */
export type RedirectResult =
  | { status: 'authenticated' }
  /** The ticket is a cookie: `finishSignup` without `signupToken`. `provider`: where the user logged in. */
  | (Omit<Extract<LoginResult, { status: 'signup_required' }>, 'signupToken'> & { provider: string })
  | { status: 'linked'; provider: string }
  | { status: 'error'; error: string; during: 'login' | 'link' }
  /** The URL carries nothing of the gateway's (a plain page load). */
  | { status: 'none' }

/**
 * What a native SDK gives the app, exactly as `POST /auth/login` takes it (one kind):
 * an ID token (Kakao, Google, OIDC providers; Apple with its raw `nonce`, `code` and first-time `name`),
 * an access token (Kakao, Naver), or a code from a PKCE flow the app ran itself.
 */
export type NativeCredential =
  | { idToken: string; nonce?: string; code?: string; name?: { givenName?: string; familyName?: string } }
  | { accessToken: string }
  | { code: string; codeVerifier: string; redirectUri: string; nonce?: string }

/** A code the provider sent back for a login started with `startLogin`. */
export interface StartedLoginCode {
  code: string
  state: string
  redirectUri: string
}

export interface SignupFields {
  /** From a `signup_required` login; leave out after the web redirect flow (the ticket is a cookie). */
  signupToken?: string
  nickname: string
  email?: string
  photo?: string
}

export interface StartedLogin {
  /** Send the user here (a browser, `location.assign`, or an in-app browser session). */
  authorizationUrl: string
  /** Comes back with the code; give both to `finishLogin`. */
  state: string
  /** Seconds the state is good for. */
  expiresIn: number
}

interface TokenAnswer {
  status: 'authenticated'
  accessToken: string
  expiresIn: number
  refreshToken?: string
  user?: PublicUser
  isNewUser?: boolean
}

type SignupAnswer = Extract<LoginResult, { status: 'signup_required' }>

/** Refresh this long before the access token's `expiresIn` runs out. */
const EXPIRY_MARGIN_MS = 5_000
const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 4_000 }

export class GatewayClient {
  private readonly baseUrl: string
  private readonly platform: Platform
  private readonly storage: RefreshTokenStorage | undefined
  private readonly retry: RetryPolicy
  private readonly timeoutMs: number
  private readonly fetcher: typeof fetch
  private readonly listeners = new Set<(event: SessionEvent) => void>()
  private accessToken: string | undefined
  private expiresAt = 0
  private refreshing: Promise<string> | undefined
  private current: SessionState = 'unknown'
  /** Bumped by every login and sign-out, so a refresh that was in flight meanwhile keeps nothing. */
  private epoch = 0

  constructor(private readonly options: GatewayClientOptions) {
    if (options.platform !== 'web' && options.platform !== 'native') throw new TypeError("platform must be 'web' or 'native'")
    if (options.platform === 'native' && !options.storage) throw new TypeError('a native client needs storage for its refresh token')
    // No URL parsing here: React Native's URL is incomplete without a polyfill.
    if (!/^https?:\/\/[^/?#]+/i.test(options.baseUrl)) throw new TypeError('baseUrl must be the gateway\'s http(s) URL')
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.platform = options.platform
    this.storage = options.platform === 'native' ? options.storage : undefined
    this.retry = { ...DEFAULT_RETRY, ...options.retry }
    this.timeoutMs = options.timeoutMs ?? 15_000
    const given = options.fetch
    this.fetcher = given ? (input, init) => given(input, init) : (input, init) => fetch(input, init)
  }

  // ---- the session ----

  get state(): SessionState {
    return this.current
  }

  /** When the access token in memory runs out (the gateway's `expiresIn` from its arrival); none before the first token. */
  get accessTokenExpiresAt(): Date | undefined {
    return this.accessToken ? new Date(this.expiresAt) : undefined
  }

  /** Hears every change of state; answers the function that stops it. */
  subscribe(listener: (event: SessionEvent) => void): () => void {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }

  /**
   * At start-up (page load, app launch): finds the session the app already has (the web's
   * refresh cookie, asked of `GET /auth/session`; the stored token on native) and fetches an
   * access token. A gateway that is unavailable leaves the app signed in, without a token yet.
   */
  async restore(): Promise<SessionState> {
    const has = this.storage
      ? Boolean(await this.storage.get())
      : (await this.call<{ refreshCookie: boolean }>('GET', '/auth/session')).refreshCookie
    if (!has) {
      this.setState({ state: 'signed_out', reason: 'no_session' })
      return this.current
    }
    try {
      await this.refresh()
    } catch (error) {
      if (!(error instanceof GatewayError && error.transient)) throw error
      // The session is there; the gateway is not, for now. The next call refreshes again.
      this.setState({ state: 'signed_in' })
    }
    return this.current
  }

  /** The current access token, refreshed first (single-flight) when it has expired or is about to. */
  async getAccessToken(): Promise<string> {
    if (this.accessToken && Date.now() < this.expiresAt - EXPIRY_MARGIN_MS) return this.accessToken
    return this.refresh()
  }

  /**
   * Exchanges the refresh token for new tokens and answers the new access token. Concurrent
   * callers share one request. No answer, 408, 429 or 5xx: retried with exponential backoff
   * and full jitter, then thrown (`error.transient`), the session kept. A refused refresh
   * token (401): the client signs out (`onSignedOut('session_ended')`) and throws.
   */
  refresh(): Promise<string> {
    this.refreshing ??= this.refreshWithRetries().finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  /**
   * `fetch` with `Authorization: Bearer <access token>`, for the app's APIs (and the gateway's).
   * An answer `401` with `invalid_token` (the token expired early, the gateway rotated keys)
   * causes one refresh, shared with every other caller, and one retry. Give a body that can
   * be sent twice (a string, not a stream).
   */
  async fetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
    const token = await this.getAccessToken()
    const response = await this.withToken(input, init, token)
    if (!(await isInvalidToken(response))) return response
    // The first caller to get here refreshes; the others share it, or find it done.
    const fresh = this.accessToken !== undefined && this.accessToken !== token ? this.accessToken : await this.refresh()
    return this.withToken(input, init, fresh)
  }

  // ---- logging in ----

  /** The login providers the gateway has enabled (`GET /auth/providers`), by the names the calls below take. */
  async providers(): Promise<string[]> {
    return (await this.call<{ providers: string[] }>('GET', '/auth/providers')).providers
  }

  /**
   * Web, the redirect flow the gateway runs: where to send the browser
   * (`location.assign(url)`). It comes back to `returnTo` (an origin in WEB_ORIGINS); read
   * the outcome there with `completeRedirect`.
   */
  authorizeUrl(provider: string, { returnTo }: { returnTo: string }): string {
    return `${this.baseUrl}/auth/authorize/${encodeURIComponent(provider)}?returnTo=${encodeURIComponent(returnTo)}`
  }

  /**
   * Web, back at `returnTo`: what the gateway added to the URL (`?signup=required`,
   * `?linked=`, `?error=`, `?link_error=`, or nothing after a login). Except while a signup
   * is pending, the session is restored too (`restore()`): the page was reloaded. Signup
   * required: the provider, its profile and the missing fields; then `finishSignup` without
   * `signupToken` (the ticket is a cookie).
   */
  async completeRedirect(url: string | URL): Promise<RedirectResult> {
    const query = new URL(url).searchParams
    if (query.get('signup') === 'required') {
      const { provider, profile, missing, expiresIn } = await this.call<{ provider: string; profile: ProviderProfile; missing: SignupField[]; expiresIn: number }>('GET', '/auth/signup')
      return { status: 'signup_required', provider, profile, missing, expiresIn }
    }
    const state = await this.restore()
    const error = query.get('error')
    if (error) return { status: 'error', error, during: 'login' }
    const linkError = query.get('link_error')
    if (linkError) return { status: 'error', error: linkError, during: 'link' }
    const linked = query.get('linked')
    if (linked) return { status: 'linked', provider: linked }
    return state === 'signed_in' ? { status: 'authenticated' } : { status: 'none' }
  }

  /**
   * A login whose state, nonce and PKCE the gateway keeps (`POST /auth/login/start`). Send the
   * user to `authorizationUrl`; the provider comes back to `redirectUri` (one of the gateway's
   * ALLOWED_REDIRECT_URIS) with `code` and `state`: give them to `finishLogin`.
   */
  startLogin(provider: string, { redirectUri }: { redirectUri: string }): Promise<StartedLogin> {
    return this.call('POST', '/auth/login/start', { provider, redirectUri })
  }

  /** Finishes a `startLogin`: the code and state from the provider's redirect. */
  async finishLogin(provider: string, { code, state, redirectUri }: StartedLoginCode): Promise<LoginResult> {
    return this.loginResult(await this.call('POST', '/auth/login', { provider, code, state, redirectUri }))
  }

  /** Logs in with what a native SDK gave the app (an ID token or access token), or a code from the app's own PKCE. */
  async loginWithNativeCredential(provider: string, credential: NativeCredential): Promise<LoginResult> {
    return this.loginResult(await this.call('POST', '/auth/login', { provider, ...credential }))
  }

  /** Finishes a first login: the fields the gateway said are `missing` (the nickname always). */
  async finishSignup(fields: SignupFields): Promise<Extract<LoginResult, { status: 'authenticated' }>> {
    const result = await this.loginResult(await this.call('POST', '/auth/signup', fields))
    if (result.status !== 'authenticated') throw new GatewayError(502, 'bad_response', 'the gateway did not sign the user in')
    return result
  }

  // ---- the account ----

  me(): Promise<Me> {
    return this.authorized('GET', '/auth/me')
  }

  /** The user's linked provider identities, oldest first. */
  async identities(): Promise<Identity[]> {
    return (await this.me()).identities
  }

  /** Links another provider identity, proved with any credential a login takes; answers all of the user's identities. */
  async link(provider: string, credential: NativeCredential | StartedLoginCode): Promise<Identity[]> {
    return (await this.authorized<{ identities: Identity[] }>('POST', '/auth/identities', { provider, ...credential })).identities
  }

  /** Web: a link through the provider's pages. Send the browser to `authorizationUrl`; it comes back to `returnTo?linked=<provider>`. */
  startLink(provider: string, { returnTo }: { returnTo: string }): Promise<{ authorizationUrl: string }> {
    return this.authorized('POST', '/auth/identities/start', { provider, returnTo })
  }

  /** Unlinks one identity (`409 last_identity` for the only one). */
  async unlink(identityId: string): Promise<void> {
    await this.authorized('DELETE', `/auth/identities/${encodeURIComponent(identityId)}`)
  }

  /**
   * Ends this session at the gateway and here. An unavailable gateway is retried as a refresh
   * is; if it stays unavailable the client is signed out here all the same and the error is
   * thrown (on the web the cookie may then still hold the session: tell the user).
   */
  async logout(): Promise<void> {
    try {
      // A refresh in flight rotates the token: end the session with its successor.
      await this.refreshing?.catch(() => undefined)
      await this.withRetries(async () => {
        const refreshToken = await this.storage?.get()
        if (this.platform === 'web' || refreshToken) await this.call('POST', '/auth/logout', refreshToken ? { refreshToken } : undefined)
      })
    } finally {
      await this.signOut('logout')
    }
  }

  /** Ends every session of the user, on every device. */
  async logoutEverywhere(): Promise<void> {
    await this.authorized('POST', '/auth/logout-all')
    await this.signOut('logout_everywhere')
  }

  /**
   * Deletes the account. The gateway wants a login within the last 10 minutes: a
   * `reauthentication_required` GatewayError means log in again, then call this again.
   */
  async deleteAccount(): Promise<void> {
    await this.authorized('DELETE', '/auth/me')
    await this.signOut('account_deleted')
  }

  // ---- inside ----

  private async refreshWithRetries(): Promise<string> {
    const epoch = this.epoch
    try {
      const answer = await this.withRetries(async () => {
        const stored = await this.storage?.get()
        if (this.storage && !stored) throw new GatewayError(401, 'invalid_grant', 'there is no session to refresh')
        return this.call<TokenAnswer>('POST', '/auth/token', stored ? { refreshToken: stored } : undefined)
      })
      if (epoch !== this.epoch) {
        // A login or a sign-out happened meanwhile: this answer belongs to a session that is no longer ours.
        if (this.accessToken) return this.accessToken
        throw new GatewayError(401, 'invalid_grant', 'signed out while refreshing')
      }
      await this.keep(answer, false)
      return answer.accessToken
    } catch (error) {
      if (error instanceof GatewayError && error.error === 'invalid_grant' && epoch === this.epoch) await this.signOut('session_ended')
      throw error
    }
  }

  /** Runs `attempt`, again after a transient failure, with exponential backoff and full jitter. */
  private async withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt()
      } catch (error) {
        if (!(error instanceof GatewayError && error.transient) || n >= this.retry.attempts) throw error
        const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (n - 1))
        const asked = error.retryAfter === undefined ? 0 : Math.min(error.retryAfter * 1000, this.retry.maxDelayMs)
        await new Promise((resolve) => setTimeout(resolve, Math.max(asked, Math.random() * ceiling)))
      }
    }
  }

  private async loginResult(answer: TokenAnswer | SignupAnswer): Promise<LoginResult> {
    if (answer.status === 'signup_required') {
      const { status, signupToken, profile, missing, expiresIn } = answer
      return { status, signupToken, profile, missing, expiresIn }
    }
    await this.keep(answer, true)
    return { status: 'authenticated', user: answer.user!, isNewUser: answer.isNewUser ?? false }
  }

  private async keep(answer: TokenAnswer, login: boolean): Promise<void> {
    if (this.storage) {
      if (!answer.refreshToken) throw new GatewayError(502, 'bad_response', 'the gateway sent no refresh token: does this native client send an Origin header?')
      await this.storage.set(answer.refreshToken)
    }
    if (login) this.epoch++
    this.accessToken = answer.accessToken
    this.expiresAt = Date.now() + answer.expiresIn * 1000
    this.setState({ state: 'signed_in' })
  }

  private async signOut(reason: SignedOutReason): Promise<void> {
    this.epoch++
    this.accessToken = undefined
    this.expiresAt = 0
    try {
      await this.storage?.delete()
    } finally {
      this.setState({ state: 'signed_out', reason })
    }
  }

  private setState(event: SessionEvent): void {
    if (this.current === event.state) return
    this.current = event.state
    if (event.state === 'signed_out' && event.reason !== 'no_session') this.options.onSignedOut?.(event.reason)
    for (const listener of [...this.listeners]) listener(event)
  }

  private withToken(input: string | URL, init: RequestInit, token: string): Promise<Response> {
    const headers = new Headers(init.headers)
    headers.set('authorization', `Bearer ${token}`)
    return this.fetcher(input, { ...init, headers })
  }

  /** A gateway call with the access token; a 401 invalid_token refreshes once and retries. */
  private async authorized<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, this.init(method, body))
    } catch (error) {
      throw error instanceof GatewayError ? error : networkError(error)
    }
    return read<T>(response)
  }

  /** A gateway call without the access token, answered within `timeoutMs`. */
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), this.timeoutMs)
    try {
      let response: Response
      try {
        response = await this.fetcher(`${this.baseUrl}${path}`, { ...this.init(method, body), signal: abort.signal })
      } catch (error) {
        throw networkError(error)
      }
      return await read<T>(response)
    } finally {
      clearTimeout(timer)
    }
  }

  private init(method: string, body: unknown): RequestInit {
    return {
      method,
      // Web: the refresh and ticket cookies go along, and the browser adds Origin. Native: no cookies.
      credentials: this.platform === 'web' ? 'include' : 'omit',
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    }
  }
}

export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  return new GatewayClient(options)
}

function networkError(cause: unknown): GatewayError {
  const error = new GatewayError(0, 'network_error', `the gateway could not be reached: ${cause instanceof Error ? cause.message : String(cause)}`)
  ;(error as { cause?: unknown }).cause = cause
  return error
}

/**
 * A 401 that says the access token is refused: `WWW-Authenticate: Bearer error="invalid_token"`,
 * or, since browsers hide that header from cross-origin scripts, `{"error":"invalid_token"}`.
 */
async function isInvalidToken(response: Response): Promise<boolean> {
  if (response.status !== 401) return false
  if (/invalid_token/.test(response.headers.get('www-authenticate') ?? '')) return true
  try {
    const body = (await response.clone().json()) as { error?: unknown }
    return body?.error === 'invalid_token'
  } catch {
    return false
  }
}

async function read<T>(response: Response): Promise<T> {
  if (response.status === 204) return undefined as T
  const text = await response.text()
  let body: Record<string, unknown> | undefined
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined
  } catch {
    // Not the gateway's JSON (a proxy's error page): the status says what happened.
  }
  if (!response.ok) {
    const retryAfter = Number(response.headers.get('retry-after') ?? NaN)
    throw new GatewayError(
      response.status,
      typeof body?.error === 'string' ? body.error : 'http_error',
      typeof body?.message === 'string' ? body.message : `the gateway answered ${response.status}`,
      Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
    )
  }
  if (body === undefined) throw new GatewayError(502, 'bad_response', 'the gateway answered with something that is not JSON')
  return body as T
}
