// A client for apps in front of the social-login gateway, for the browser (`platform: 'web'`)
// and for React Native or any other native app (`platform: 'native'`). It uses only `fetch`,
// `URL` and timers, so it runs in both.
//
// Web: the refresh token is the gateway's HttpOnly cookie; this client never sees it. Every
// call goes with `credentials: 'include'`, and the page's origin must be in the gateway's
// WEB_ORIGINS. Native: the refresh token comes in the body and lives in the storage the app
// hands in (Keychain, Keystore, expo-secure-store), never in memory longer than a call.
// The access token lives in memory only, on both.
//
// Refresh is single-flight: however many calls find the access token expired (or get a
// 401 from an API), one refresh runs and they all wait for it. A 503 or a network failure
// of the refresh is retried with exponential backoff and full jitter, and never signs the
// user out; a 401 (or 400) from the refresh means the session is over: the client forgets
// the tokens and says so once, through `onChange`.

export type Platform = 'web' | 'native'

/** Where a native app keeps its refresh token: a secure store of the platform. */
export interface RefreshTokenStorage {
  get(): Promise<string | null | undefined>
  set(refreshToken: string): Promise<void>
  delete(): Promise<void>
}

export type SessionState = 'signed_in' | 'signed_out'

export interface RetryPolicy {
  /** Refresh attempts in all, the first included; default 6. */
  attempts: number
  /** The first backoff; each next one doubles, at most `maxDelayMs`; default 200 ms. */
  baseDelayMs: number
  /** Default 5000 ms. */
  maxDelayMs: number
}

export interface GatewayClientOptions {
  /** The gateway's PUBLIC_URL. */
  baseUrl: string
  platform: Platform
  /** Required on native: where the refresh token is kept. */
  storage?: RefreshTokenStorage
  /** Told when the session starts or ends (a refused refresh, logout, deletion). */
  onChange?: (state: SessionState) => void
  retry?: Partial<RetryPolicy>
  /** Default: the global fetch. */
  fetch?: typeof fetch
}

/** What the gateway refused, as it said it: `{ error, message }` and the HTTP status. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
    /** Seconds the gateway asked to wait (Retry-After), when it did. */
    readonly retryAfter?: number,
  ) {
    super(message)
    this.name = 'GatewayError'
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

export type LoginResult =
  | { status: 'authenticated'; user: PublicUser; isNewUser: boolean }
  | { status: 'signup_required'; signupToken?: string; profile: Partial<Omit<PublicUser, 'id'>>; missing: string[] }

/** Where a redirect flow ended, as `completeRedirect` reads it from the URL the browser came back to. */
export type RedirectResult =
  | { status: 'signed_in'; user: Me }
  | { status: 'signup_required'; profile: Partial<Omit<PublicUser, 'id'>>; missing: string[] }
  | { status: 'linked'; provider: string }
  | { status: 'error'; error: string }

/** What a native SDK or the app's own PKCE flow gives it: exactly one credential kind. */
export type ProviderCredential =
  | { code: string; state: string; redirectUri?: string }
  | { code: string; codeVerifier: string; redirectUri: string; nonce?: string }
  | { idToken: string; nonce?: string; accessToken?: string }
  | { accessToken: string }

export interface SignupFields {
  nickname?: string
  email?: string
  photo?: string
}

interface TokenAnswer {
  status: 'authenticated'
  accessToken: string
  expiresIn: number
  refreshToken?: string
  user?: PublicUser
  isNewUser?: boolean
}

/** Refresh this long before the access token's `expiresIn` runs out. */
const EXPIRY_MARGIN_MS = 5_000
const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 200, maxDelayMs: 5_000 }

export class GatewayClient {
  private readonly baseUrl: string
  private readonly retry: RetryPolicy
  private readonly fetcher: typeof fetch
  private accessToken: string | undefined
  private expiresAt = 0
  private refreshing: Promise<string> | undefined
  private state: SessionState = 'signed_out'

  constructor(private readonly options: GatewayClientOptions) {
    if (options.platform === 'native' && !options.storage) throw new TypeError('a native client needs storage for its refresh token')
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.retry = { ...DEFAULT_RETRY, ...options.retry }
    this.fetcher = options.fetch ?? ((input, init) => fetch(input, init))
  }

  /** Signed in as far as this client knows (a refresh may still find the session ended). */
  get sessionState(): SessionState {
    return this.state
  }

  // ---- logging in ----

  /** Web: where to send the browser for a login the gateway finishes; it comes back to `returnTo`. */
  redirectUrl(provider: string, returnTo: string): string {
    return `${this.baseUrl}/auth/authorize/${encodeURIComponent(provider)}?${new URLSearchParams({ returnTo })}`
  }

  /**
   * Web, back at `returnTo`: reads what the gateway added to the URL. Signed in: the access
   * token is fetched (refresh cookie). `signup_required`: call `signupProfile()`, then `finishSignup()`.
   */
  async completeRedirect(url: string): Promise<RedirectResult> {
    const query = new URL(url).searchParams
    const error = query.get('error') ?? query.get('link_error')
    if (error) return { status: 'error', error }
    const linked = query.get('linked')
    if (linked) return { status: 'linked', provider: linked }
    if (query.get('signup') === 'required') {
      const { profile, missing } = await this.signupProfile()
      return { status: 'signup_required', profile, missing }
    }
    await this.refresh()
    return { status: 'signed_in', user: await this.me() }
  }

  /** Starts a login the gateway keeps the state of; the app sends the user to `authorizationUrl` and gives the code back to `finishLogin`. */
  startLogin(provider: string, redirectUri: string): Promise<{ authorizationUrl: string; state: string; expiresIn: number }> {
    return this.call('POST', '/auth/login/start', { body: { provider, redirectUri } })
  }

  /** Logs in with a provider credential: a code (with the gateway's `state` or the app's PKCE verifier), an ID token, or an access token. */
  async login(provider: string, credential: ProviderCredential, extra: { name?: { givenName?: string; familyName?: string } } = {}): Promise<LoginResult> {
    const answer = await this.call<TokenAnswer | Extract<LoginResult, { status: 'signup_required' }>>('POST', '/auth/login', { body: { provider, ...credential, ...extra } })
    return this.loginResult(answer)
  }

  /** Web, after `completeRedirect` said signup is needed: what the provider told and which fields are missing (the ticket is a cookie). */
  signupProfile(): Promise<{ provider: string; profile: Partial<Omit<PublicUser, 'id'>>; missing: string[]; expiresIn: number }> {
    return this.call('GET', '/auth/signup')
  }

  /** Finishes a first login with the fields the gateway asked for; native apps pass the `signupToken` they got. */
  async finishSignup(fields: SignupFields, signupToken?: string): Promise<LoginResult> {
    const answer = await this.call<TokenAnswer>('POST', '/auth/signup', { body: { ...fields, ...(signupToken ? { signupToken } : {}) } })
    return this.loginResult(answer)
  }

  // ---- calling APIs ----

  /** The current access token, refreshed first when it has expired (single-flight). */
  async getAccessToken(): Promise<string> {
    if (this.accessToken && Date.now() < this.expiresAt - EXPIRY_MARGIN_MS) return this.accessToken
    return this.refresh()
  }

  /**
   * `fetch` with `Authorization: Bearer <access token>`. An API's 401 `invalid_token` (the
   * token expired early, or the gateway rotated keys) causes one refresh and one retry.
   * Give a body that can be sent twice (a string, not a stream).
   */
  async fetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
    const send = (token: string) => {
      const headers = new Headers(init.headers)
      headers.set('authorization', `Bearer ${token}`)
      return this.fetcher(input, { ...init, headers })
    }
    const token = await this.getAccessToken()
    const response = await send(token)
    if (response.status !== 401 || !/invalid_token/.test(response.headers.get('www-authenticate') ?? '')) return response
    // Another caller may have refreshed meanwhile: use its token rather than refresh again.
    const fresh = this.accessToken && this.accessToken !== token ? this.accessToken : await this.refresh(token)
    return send(fresh)
  }

  /**
   * Exchanges the refresh token for new tokens. Concurrent callers share one request. A 503
   * or a network failure is retried (backoff with full jitter) and then thrown, the session
   * kept; a refused refresh token signs the client out and throws a 401 GatewayError.
   * `stale`: the access token the caller found refused; if it is no longer the current one, no refresh is needed.
   */
  refresh(stale?: string): Promise<string> {
    if (stale !== undefined && this.accessToken !== undefined && this.accessToken !== stale) return Promise.resolve(this.accessToken)
    this.refreshing ??= this.refreshWithRetries().finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  // ---- the account ----

  me(): Promise<Me> {
    return this.authorized('GET', '/auth/me')
  }

  /** Links another provider identity (the same credentials `login` takes); answers all of the user's identities. */
  async link(provider: string, credential: ProviderCredential): Promise<Identity[]> {
    return (await this.authorized<{ identities: Identity[] }>('POST', '/auth/identities', { provider, ...credential })).identities
  }

  /** Web: a link through the provider's pages; send the browser to `authorizationUrl`, it comes back to `returnTo?linked=<provider>`. */
  startLink(provider: string, returnTo: string): Promise<{ authorizationUrl: string }> {
    return this.authorized('POST', '/auth/identities/start', { provider, returnTo })
  }

  async unlink(identityId: string): Promise<void> {
    await this.authorized('DELETE', `/auth/identities/${encodeURIComponent(identityId)}`)
  }

  /** Ends this session (at the gateway too) and forgets the tokens; signed out even when the gateway cannot be reached. */
  async logout(): Promise<void> {
    try {
      const refreshToken = this.options.platform === 'native' ? await this.options.storage!.get() : undefined
      if (this.options.platform === 'web' || refreshToken) {
        await this.call('POST', '/auth/logout', { body: refreshToken ? { refreshToken } : undefined })
      }
    } finally {
      await this.signOut()
    }
  }

  /** Ends every session of the user, on every device. */
  async logoutEverywhere(): Promise<void> {
    await this.authorized('POST', '/auth/logout-all')
    await this.signOut()
  }

  /**
   * Deletes the account. The gateway wants a login within the last 10 minutes: a
   * `reauthentication_required` GatewayError means log in again, then call this.
   */
  async deleteAccount(): Promise<void> {
    await this.authorized('DELETE', '/auth/me')
    await this.signOut()
  }

  // ---- inside ----

  private async refreshWithRetries(): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        const stored = this.options.platform === 'native' ? await this.options.storage!.get() : undefined
        if (this.options.platform === 'native' && !stored) {
          await this.signOut()
          throw new GatewayError(401, 'invalid_grant', 'there is no session to refresh')
        }
        const answer = await this.call<TokenAnswer>('POST', '/auth/token', { body: stored ? { refreshToken: stored } : undefined })
        await this.keep(answer)
        return answer.accessToken
      } catch (error) {
        if (error instanceof GatewayError && (error.status === 401 || error.status === 400)) {
          await this.signOut()
          throw error
        }
        const retryable = !(error instanceof GatewayError) || error.status === 503 || error.status === 429 || error.status >= 502
        if (!retryable || attempt >= this.retry.attempts) throw error
        const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1))
        const asked = error instanceof GatewayError && error.retryAfter !== undefined ? error.retryAfter * 1000 : 0
        await new Promise((resolve) => setTimeout(resolve, Math.max(asked, Math.random() * ceiling)))
      }
    }
  }

  private async loginResult(answer: TokenAnswer | Extract<LoginResult, { status: 'signup_required' }>): Promise<LoginResult> {
    if (answer.status === 'signup_required') return answer
    await this.keep(answer)
    return { status: 'authenticated', user: answer.user!, isNewUser: answer.isNewUser ?? false }
  }

  private async keep(answer: TokenAnswer): Promise<void> {
    if (this.options.platform === 'native') {
      if (!answer.refreshToken) throw new TypeError('the gateway sent no refresh token: is the native client sending an Origin header?')
      await this.options.storage!.set(answer.refreshToken)
    }
    this.accessToken = answer.accessToken
    this.expiresAt = Date.now() + answer.expiresIn * 1000
    this.setState('signed_in')
  }

  private async signOut(): Promise<void> {
    this.accessToken = undefined
    this.expiresAt = 0
    if (this.options.platform === 'native') await this.options.storage!.delete()
    this.setState('signed_out')
  }

  private setState(state: SessionState): void {
    if (this.state === state) return
    this.state = state
    this.options.onChange?.(state)
  }

  /** A call with the access token; a 401 invalid_token refreshes once and retries. */
  private async authorized<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(`${this.baseUrl}${path}`, {
      method,
      credentials: this.options.platform === 'web' ? 'include' : 'omit',
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    })
    return this.read<T>(response)
  }

  private async call<T>(method: string, path: string, { body }: { body?: unknown } = {}): Promise<T> {
    const response = await this.fetcher(`${this.baseUrl}${path}`, {
      method,
      credentials: this.options.platform === 'web' ? 'include' : 'omit',
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    })
    return this.read<T>(response)
  }

  private async read<T>(response: Response): Promise<T> {
    if (response.status === 204) return undefined as T
    const text = await response.text()
    let body: Record<string, unknown> = {}
    try {
      if (text) body = JSON.parse(text) as Record<string, unknown>
    } catch {
      // Not the gateway's JSON (a proxy's error page): the status says what happened.
      if (response.ok) throw new GatewayError(502, 'bad_response', 'the gateway answered with something that is not JSON')
    }
    if (!response.ok) {
      const retryAfter = Number(response.headers.get('retry-after'))
      throw new GatewayError(
        response.status,
        typeof body.error === 'string' ? body.error : 'http_error',
        typeof body.message === 'string' ? body.message : `the gateway answered ${response.status}`,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      )
    }
    return body as T
  }
}

export function createGatewayClient(options: GatewayClientOptions): GatewayClient {
  return new GatewayClient(options)
}
