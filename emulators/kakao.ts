// A Kakao-like login server on loopback, following Kakao's documented wire format: kauth (discovery,
// /oauth/authorize, /oauth/token, JWKS) on one port and kapi (/v2/user/me,
// /v1/user/access_token_info, /v1/oidc/userinfo, /v1/user/unlink) on another, as Kakao
// serves them from two hosts. oidc-provider cannot reproduce Kakao's quirks (KOE error
// codes, a member id sent as a raw JSON number above 2^53, client_secret_post only, kapi's
// `{msg, code}` errors), so this is a small node:http server with jose for the RS256 ID tokens.
//
// Tests play the user with `authorize(url, account)`; a human gets a tiny consent form.
// `sdkLogin()` hands out what Kakao's native SDK would give an app (access token and ID
// token, possibly for a native app key or another app id). `fail()` injects faults into
// the next call(s) of an endpoint; `down()`/`up()` refuse connections altogether.
// `signIdToken()` and `tamperNextIdToken()` make hostile but validly signed ID tokens.
// The app's own unlink (`POST /v1/user/unlink`, with the member's access token or the app's
// admin key) ends the member's link as Kakao does, is recorded for `unlinks()`, and sends no
// unlink callback (Kakao sends none for unlinks the app itself made).
// Everything is kept in memory.

import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import * as jose from 'jose'
import { close, listen } from './loopback-server.js'
import { readRequestBody } from './request-body.js'

export interface KakaoAccount {
  /** The member number (회원번호), decimal; may exceed 2^53. */
  id: string
  nickname?: string
  email?: string
  /** Default true when `email` is given. */
  emailValid?: boolean
  /** Default true when `email` is given. */
  emailVerified?: boolean
  /** Profile image URL (Kakao serves http:// and https:// ones); absent: Kakao's default image. */
  thumbnail?: string
  /** Consent items the user leaves unticked on the consent screen, e.g. ['account_email']. */
  declines?: ConsentItem[]
}

export type ConsentItem = 'profile_nickname' | 'profile_image' | 'account_email'

export type KakaoEndpoint = 'discovery' | 'jwks' | 'token' | 'me' | 'tokenInfo' | 'userinfo' | 'unlink'

/** What the next call(s) of an endpoint get instead of the normal answer. */
export type KakaoFault =
  /** The normal answer, after `delayMs` (default 5000). */
  | { kind: 'slow'; delayMs?: number }
  /** No answer at all until the emulator stops. */
  | { kind: 'hang' }
  /** The connection is closed without an answer. */
  | { kind: 'closed' }
  /** HTTP 200 with an HTML page (a maintenance page from a proxy). */
  | { kind: 'html' }
  /** HTTP 200, `application/json`, but the body is cut off mid-way. */
  | { kind: 'malformed' }
  /** HTTP 200 with valid JSON that lacks the endpoint's essential fields. */
  | { kind: 'missing-fields' }
  /** The normal answer padded with a large extra field (default 256 KiB). */
  | { kind: 'oversized'; bytes?: number }
  /** Any status, body and headers, e.g. a KOE237 rate limit or a kapi -402. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }

export interface KakaoRequestRecord {
  endpoint: KakaoEndpoint | 'authorize' | 'consent' | 'unknown'
  method: string
  path: string
  authorization?: string
  contentType?: string
  /** The parsed form body of token and unlink requests. */
  form?: Record<string, string>
}

/** A successful `POST /v1/user/unlink`: whose link ended, and which credential the app used. */
export interface KakaoUnlinkRecord {
  memberId: string
  /** `admin_key`: `Authorization: KakaoAK <admin key>` with target_id; `access_token`: the member's Bearer token. */
  by: 'admin_key' | 'access_token'
}

export interface KakaoEmulatorOptions {
  /** The REST API key. */
  clientId: string
  /** Absent: the app's client secret is turned off (Kakao allows that). */
  clientSecret?: string
  redirectUris: string[]
  /** The numeric app id reported by /v1/user/access_token_info. */
  appId: number | string
  /** Port of kauth; 0 or absent: a free port. */
  port?: number
  /** Port of kapi; 0 or absent: a free port. */
  apiPort?: number
  host?: string
  /** The app's (primary) admin key, for `KakaoAK` calls; default DEFAULT_KAKAO_ADMIN_KEY. */
  adminKey?: string
}

/** The admin key of an emulator started without `adminKey`. */
export const DEFAULT_KAKAO_ADMIN_KEY = 'emulated-kakao-admin-key'

export interface SdkLoginOptions {
  /** The app key the SDK used (a native app key); default the REST API key. */
  clientId?: string
  /** The app the token belongs to; default the emulator's app id. */
  appId?: number | string
  nonce?: string
}

export interface KakaoSdkTokens {
  accessToken: string
  refreshToken: string
  idToken: string
}

export interface KakaoEmulator {
  /** kauth base URL, `http://127.0.0.1:<port>`: also the issuer and discovery base. */
  authUrl: string
  /** kapi base URL. */
  apiUrl: string
  appId: string
  /** The app's admin key: `Authorization: KakaoAK <adminKey>` on kapi calls. */
  adminKey: string
  stop(): Promise<void>
  /** Plays the user: consents as `account` and returns the redirect (code and state, or an error) without following it. */
  authorize(authorizationUrl: string | URL, account: KakaoAccount): Promise<URL>
  /** The user presses Cancel: the redirect carries `error=access_denied`. */
  deny(authorizationUrl: string | URL): Promise<URL>
  /** What Kakao's native SDK gives an app after a login. */
  sdkLogin(account: KakaoAccount, options?: SdkLoginOptions): Promise<KakaoSdkTokens>
  /**
   * Calls the app's unlink callback as Kakao does when a member unlinks the app (or leaves
   * Kakao): POST form `app_id`, `user_id`, `referrer_type`, `Authorization: KakaoAK <adminKey>`.
   * Returns the HTTP status. `adminKey` defaults to the emulator's own.
   */
  sendUnlinkCallback(url: string, member: { id: string; referrerType?: string }, adminKey?: string): Promise<number>
  /** Signs arbitrary ID token claims with the emulator's key (expired or otherwise odd tokens). */
  signIdToken(claims: Record<string, unknown>): Promise<string>
  /**
   * The next ID token issued (by the token endpoint or sdkLogin) carries `edit(claims)`
   * instead, validly signed; with `forged`, signed under the emulator's kid by a key that is
   * not in its JWKS (an answer forged on its way).
   */
  tamperNextIdToken(edit: (claims: Record<string, unknown>) => Record<string, unknown>, options?: { forged?: boolean }): void
  /**
   * The user unlinks the app: their tokens then get kapi's -401 answer, and the member is
   * not linked (an unlink call for them gets -101) until they log in again.
   */
  revokeConsent(memberId: string): void
  /** Every successful `POST /v1/user/unlink`, oldest first (faulted and refused calls are not in it). */
  unlinks(): KakaoUnlinkRecord[]
  /** The operator re-issues (or turns off, with undefined) the client secret in the console. */
  setClientSecret(secret: string | undefined): void
  /** The next `times` (default 1) calls of `endpoint` get `fault`. */
  fail(endpoint: KakaoEndpoint, fault: KakaoFault, times?: number): void
  clearFaults(): void
  /** Both ports stop accepting connections (connection refused) until up(). */
  down(): Promise<void>
  up(): Promise<void>
  /** Every request received, oldest first. */
  readonly requests: KakaoRequestRecord[]
}

// ---------------------------------------------------------------------------

const ACCESS_TOKEN_TTL = 21_599
const REFRESH_TOKEN_TTL = 5_183_999
const CODE_TTL_MS = 10 * 60_000
const CONSENT_ITEMS: readonly ConsentItem[] = ['profile_nickname', 'profile_image', 'account_email']
const DEFAULT_IMAGE = 'http://img1.kakaocdn.net/thumb/R640x640.q70/?fname=http://t1.kakaocdn.net/account_images/default_profile.jpeg'
const JSON_TYPE = 'application/json;charset=UTF-8'

interface PendingAuthorization {
  clientId: string
  redirectUri: string
  state?: string
  nonce?: string
  codeChallenge?: string
  /** Consent items asked for; every configured item when the request had no scope. */
  requested: ConsentItem[]
  openid: boolean
  expiresAt: number
}

interface IssuedCode {
  clientId: string
  redirectUri: string
  nonce?: string
  codeChallenge?: string
  memberId: string
  consented: Set<ConsentItem>
  openid: boolean
  authTime: number
  expiresAt: number
}

interface IssuedToken {
  memberId: string
  clientId: string
  appId: string
  consented: Set<ConsentItem>
  openid: boolean
  nonce?: string
  expiresAt: number
}

const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const now = () => Math.floor(Date.now() / 1000)
const token = (bytes = 32) => randomBytes(bytes).toString('base64url')

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...headers })
  res.end(body)
}

const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  send(res, status, JSON.stringify(body), headers)

/** kauth's error shape: `{ error, error_description, error_code: "KOE…" }`. */
function kauthError(res: ServerResponse, status: number, error: string, description: string, code?: string): void {
  sendJson(res, status, { error, error_description: description, ...(code ? { error_code: code } : {}) })
}

/** kapi's error shape: `{ msg, code }`; 401s carry a Bearer challenge. */
function kapiError(res: ServerResponse, status: number, msg: string, code: number): void {
  const headers: Record<string, string> = status === 401 ? { 'www-authenticate': 'Bearer error=invalid_token' } : {}
  sendJson(res, status, { msg, code }, headers)
}

function errorPage(res: ServerResponse, status: number, code: string, message: string): void {
  send(
    res,
    status,
    `<!doctype html><meta charset="utf-8"><title>Emulated Kakao: ${escapeHtml(code)}</title><h1>Emulated Kakao: error ${escapeHtml(code)}</h1><p>${escapeHtml(message)}</p>`,
    { 'content-type': 'text/html; charset=utf-8' },
  )
}

/** Kakao's docs separate scopes with commas, its SDK with spaces: accept both. */
const splitScope = (scope: string) => scope.split(/[\s,]+/).filter(Boolean)

/** A member number: a positive decimal that fits a Long. */
const isMemberId = (id: string) => /^[1-9][0-9]{0,18}$/.test(id) && BigInt(id) <= 9223372036854775807n

function checkAccount(account: KakaoAccount): void {
  if (!/^[1-9][0-9]{0,18}$/.test(account.id)) throw new Error(`kakao emulator: member id "${account.id}" is not a positive 64-bit decimal`)
  if (!isMemberId(account.id)) throw new Error('kakao emulator: member id exceeds a Long')
}

/** The consent items an account ends up sharing for a request. */
function consentedItems(requested: readonly ConsentItem[], account: KakaoAccount): Set<ConsentItem> {
  return new Set(requested.filter((item) => !account.declines?.includes(item)))
}

/** `/v2/user/me`, with `id` as a raw JSON number in the text, exactly as Kakao sends it (even above 2^53). */
function userMeBody(account: KakaoAccount, consented: Set<ConsentItem>, connectedAt: string, padding?: string): string {
  const nicknameAgreed = consented.has('profile_nickname')
  const imageAgreed = consented.has('profile_image')
  const image = account.thumbnail ?? DEFAULT_IMAGE
  const profile: Record<string, unknown> = {}
  if (nicknameAgreed && account.nickname !== undefined) {
    profile.nickname = account.nickname
    profile.is_default_nickname = false
  }
  if (imageAgreed) {
    profile.thumbnail_image_url = image
    profile.profile_image_url = image
    profile.is_default_image = account.thumbnail === undefined
  }
  const kakaoAccount: Record<string, unknown> = {
    profile_nickname_needs_agreement: !nicknameAgreed,
    profile_image_needs_agreement: !imageAgreed,
  }
  if (nicknameAgreed || imageAgreed) kakaoAccount.profile = profile
  if (account.email !== undefined) {
    kakaoAccount.has_email = true
    kakaoAccount.email_needs_agreement = !consented.has('account_email')
    if (consented.has('account_email')) {
      kakaoAccount.is_email_valid = account.emailValid ?? true
      kakaoAccount.is_email_verified = account.emailVerified ?? true
      kakaoAccount.email = account.email
    }
  } else {
    kakaoAccount.has_email = false
  }
  const properties: Record<string, string> = {}
  if (nicknameAgreed && account.nickname !== undefined) properties.nickname = account.nickname
  if (imageAgreed) {
    properties.profile_image = image
    properties.thumbnail_image = image
  }
  const rest = JSON.stringify({
    connected_at: connectedAt,
    properties,
    kakao_account: kakaoAccount,
    ...(padding !== undefined ? { padding } : {}),
  })
  return `{"id":${account.id},${rest.slice(1)}`
}

function consentPage(id: string, pending: PendingAuthorization): string {
  const items = pending.requested
    .map((item) => `<label><input type="checkbox" name="agree" value="${item}" checked> ${item}</label><br>`)
    .join('\n')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Emulated Kakao login</title></head>
<body style="font-family:sans-serif;max-width:28em;margin:2em auto">
<h1>Emulated Kakao login</h1>
<p>App <code>${escapeHtml(pending.clientId)}</code> asks for your consent. No real Kakao account is involved.</p>
<form method="post" action="/oauth/consent">
<input type="hidden" name="request" value="${escapeHtml(id)}">
<p><label>member id<br><input name="id" required pattern="[1-9][0-9]{0,18}" value="1376016924429759228"></label></p>
<p><label>nickname<br><input name="nickname" value="Dev User"></label></p>
<p><label>email<br><input name="email" type="email" value="dev@example.com"></label>
<label><input type="checkbox" name="email_valid" value="true" checked> valid</label>
<label><input type="checkbox" name="email_verified" value="true" checked> verified</label></p>
<p><label>profile image URL<br><input name="thumbnail" type="url"></label></p>
<p>${items}</p>
<p><button type="submit" name="action" value="agree">Agree and continue</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button></p>
</form></body></html>`
}

function formFromAccount(requestId: string, account: KakaoAccount): URLSearchParams {
  const form = new URLSearchParams({ request: requestId, action: 'agree', id: account.id })
  if (account.nickname !== undefined) form.set('nickname', account.nickname)
  if (account.email !== undefined) {
    form.set('email', account.email)
    form.set('email_valid', String(account.emailValid ?? true))
    form.set('email_verified', String(account.emailVerified ?? true))
  }
  if (account.thumbnail !== undefined) form.set('thumbnail', account.thumbnail)
  for (const item of CONSENT_ITEMS) if (!account.declines?.includes(item)) form.append('agree', item)
  return form
}

function accountFromForm(form: URLSearchParams): KakaoAccount {
  const text = (name: string) => form.get(name)?.trim() || undefined
  const account: KakaoAccount = { id: text('id') ?? '' }
  const nickname = text('nickname')
  if (nickname !== undefined) account.nickname = nickname
  const email = text('email')
  if (email !== undefined) {
    account.email = email
    account.emailValid = form.get('email_valid') === 'true'
    account.emailVerified = form.get('email_verified') === 'true'
  }
  const thumbnail = text('thumbnail')
  if (thumbnail !== undefined) account.thumbnail = thumbnail
  const agreed = form.getAll('agree')
  account.declines = CONSENT_ITEMS.filter((item) => !agreed.includes(item))
  return account
}

export async function startKakaoEmulator(options: KakaoEmulatorOptions): Promise<KakaoEmulator> {
  const { clientId, redirectUris } = options
  let clientSecret = options.clientSecret
  if (!clientId) throw new Error('clientId is required')
  if (redirectUris.length === 0) throw new Error('at least one redirect URI is required')
  const appId = String(options.appId)
  if (!/^[1-9][0-9]*$/.test(appId)) throw new Error('appId must be a positive decimal number')
  const host = options.host ?? '127.0.0.1'
  const adminKey = options.adminKey ?? DEFAULT_KAKAO_ADMIN_KEY
  if (!adminKey) throw new Error('adminKey must not be empty')

  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true })
  const kid = token(8)
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig', kty: 'RSA' }

  const pending = new Map<string, PendingAuthorization>()
  const codes = new Map<string, IssuedCode>()
  const accessTokens = new Map<string, IssuedToken>()
  const refreshTokens = new Map<string, IssuedToken>()
  const accounts = new Map<string, KakaoAccount>()
  const connectedAt = new Map<string, string>()
  /** Members linked to an app, as `${appId}:${memberId}`: from their login until an unlink. */
  const links = new Set<string>()
  /** Members whose link to this app ended at least once: a new link gets a new connected_at. */
  const unlinkedOnce = new Set<string>()
  const unlinkLog: KakaoUnlinkRecord[] = []
  const faults = new Map<KakaoEndpoint, { fault: KakaoFault; remaining: number }[]>()
  const timers = new Set<NodeJS.Timeout>()
  const requests: KakaoRequestRecord[] = []
  const idTokenEdits: { edit: (claims: Record<string, unknown>) => Record<string, unknown>; forged: boolean }[] = []
  const { privateKey: strangersKey } = await jose.generateKeyPair('RS256')

  const authServer = createServer((req, res) => dispatch('auth', req, res))
  const apiServer = createServer((req, res) => dispatch('api', req, res))
  const authPort = await listen(authServer, options.port ?? 0, host)
  const apiPort = await listen(apiServer, options.apiPort ?? 0, host)
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  const authUrl = `http://${urlHost}:${authPort}`
  const apiUrl = `http://${urlHost}:${apiPort}`

  const timestamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z')

  function remember(account: KakaoAccount): void {
    checkAccount(account)
    accounts.set(account.id, { ...account })
    if (!connectedAt.has(account.id)) connectedAt.set(account.id, timestamp())
  }

  /** The member is linked to the app (a login); a link made again after an unlink is connected anew. */
  function link(toApp: string, memberId: string): void {
    const key = `${toApp}:${memberId}`
    if (links.has(key)) return
    links.add(key)
    if (toApp === appId && unlinkedOnce.has(memberId)) connectedAt.set(memberId, timestamp())
  }

  /** Ends the member's link to the app: its tokens die at once. */
  function endLink(fromApp: string, memberId: string): void {
    links.delete(`${fromApp}:${memberId}`)
    if (fromApp === appId) unlinkedOnce.add(memberId)
    for (const [value, issued] of accessTokens) if (issued.memberId === memberId && issued.appId === fromApp) accessTokens.delete(value)
    for (const [value, issued] of refreshTokens) if (issued.memberId === memberId && issued.appId === fromApp) refreshTokens.delete(value)
  }

  async function signIdToken(claims: Record<string, unknown>, key = privateKey): Promise<string> {
    return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key)
  }

  function idTokenClaims(grant: { memberId: string; clientId: string; consented: Set<ConsentItem>; nonce?: string }, authTime: number) {
    const account = accounts.get(grant.memberId)!
    const iat = now()
    const claims: Record<string, unknown> = { iss: authUrl, aud: grant.clientId, sub: account.id, iat, exp: iat + ACCESS_TOKEN_TTL, auth_time: authTime }
    if (grant.nonce !== undefined) claims.nonce = grant.nonce
    if (grant.consented.has('profile_nickname') && account.nickname !== undefined) claims.nickname = account.nickname
    if (grant.consented.has('profile_image')) claims.picture = account.thumbnail ?? DEFAULT_IMAGE
    // Only a valid and verified email is put in the ID token; there is no email_verified claim.
    if (grant.consented.has('account_email') && account.email !== undefined && (account.emailValid ?? true) && (account.emailVerified ?? true)) {
      claims.email = account.email
    }
    return claims
  }

  async function issueTokens(grant: Omit<IssuedToken, 'expiresAt'>, authTime: number) {
    const accessToken = token()
    const refreshToken = token()
    const record = { ...grant, expiresAt: Date.now() + ACCESS_TOKEN_TTL * 1000 }
    link(grant.appId, grant.memberId)
    accessTokens.set(accessToken, record)
    refreshTokens.set(refreshToken, { ...record, expiresAt: Date.now() + REFRESH_TOKEN_TTL * 1000 })
    const tampering = grant.openid ? idTokenEdits.shift() : undefined
    const claims = grant.openid ? idTokenClaims(grant, authTime) : undefined
    const idToken = claims ? await signIdToken(tampering ? tampering.edit(claims) : claims, tampering?.forged ? strangersKey : privateKey) : undefined
    return { accessToken, refreshToken, idToken }
  }

  function nextFault(endpoint: KakaoEndpoint): KakaoFault | undefined {
    const queue = faults.get(endpoint)
    const head = queue?.[0]
    if (!head) return undefined
    head.remaining -= 1
    if (head.remaining <= 0) queue.shift()
    return head.fault
  }

  function endpointOf(server: 'auth' | 'api', path: string): KakaoRequestRecord['endpoint'] {
    if (server === 'auth') {
      if (path === '/.well-known/openid-configuration') return 'discovery'
      if (path === '/.well-known/jwks.json') return 'jwks'
      if (path === '/oauth/token') return 'token'
      if (path === '/oauth/authorize') return 'authorize'
      if (path === '/oauth/consent') return 'consent'
    } else {
      if (path === '/v2/user/me') return 'me'
      if (path === '/v1/user/access_token_info') return 'tokenInfo'
      if (path === '/v1/oidc/userinfo') return 'userinfo'
      if (path === '/v1/user/unlink') return 'unlink'
    }
    return 'unknown'
  }

  /** The bodies a fault sends in place of an endpoint's normal answer. */
  const MISSING_FIELDS: Record<KakaoEndpoint, unknown> = {
    discovery: { issuer: '' },
    jwks: { keys: 'none' },
    token: { token_type: 'bearer', expires_in: ACCESS_TOKEN_TTL },
    me: { connected_at: '2024-01-01T00:00:00Z', kakao_account: {} },
    tokenInfo: { expires_in: 3600 },
    userinfo: { nickname: 'no sub' },
    unlink: {},
  }

  function dispatch(server: 'auth' | 'api', req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', server === 'auth' ? authUrl : apiUrl)
    const endpoint = endpointOf(server, url.pathname)
    const record: KakaoRequestRecord = { endpoint, method: req.method ?? 'GET', path: url.pathname }
    if (req.headers.authorization !== undefined) record.authorization = req.headers.authorization
    if (req.headers['content-type'] !== undefined) record.contentType = req.headers['content-type']
    requests.push(record)

    const run = (oversize?: number) =>
      handle(server, endpoint, url, req, res, record, oversize).catch((error: unknown) => {
        if (res.headersSent) {
          res.destroy()
          return
        }
        kauthError(res, 500, 'server_error', error instanceof Error ? error.message : String(error))
      })

    const fault = endpoint === 'authorize' || endpoint === 'consent' || endpoint === 'unknown' ? undefined : nextFault(endpoint)
    if (!fault) {
      void run()
      return
    }
    switch (fault.kind) {
      case 'slow': {
        const timer = setTimeout(() => {
          timers.delete(timer)
          void run()
        }, fault.delayMs ?? 5000)
        timers.add(timer)
        return
      }
      case 'hang':
        req.resume()
        return
      case 'closed':
        req.socket.destroy()
        return
      case 'html':
        send(res, 200, '<!doctype html><html><body><h1>Service temporarily unavailable</h1></body></html>', { 'content-type': 'text/html; charset=utf-8' })
        return
      case 'malformed':
        send(res, 200, '{"id":1376016924429759228,"kakao_account":{"profile":')
        return
      case 'missing-fields':
        sendJson(res, 200, MISSING_FIELDS[endpoint as KakaoEndpoint])
        return
      case 'oversized':
        // The normal answer, with a padding field: the size alone must make it unusable.
        void run(fault.bytes ?? 256 * 1024)
        return
      case 'status': {
        const body = fault.body === undefined ? '' : typeof fault.body === 'string' ? fault.body : JSON.stringify(fault.body)
        send(res, fault.status, body, fault.headers ?? {})
        return
      }
    }
  }

  async function handle(
    server: 'auth' | 'api',
    endpoint: KakaoRequestRecord['endpoint'],
    url: URL,
    req: IncomingMessage,
    res: ServerResponse,
    record: KakaoRequestRecord,
    oversize?: number,
  ): Promise<void> {
    const padding = oversize !== undefined ? 'x'.repeat(oversize) : undefined
    const padded = (body: Record<string, unknown>) => (padding !== undefined ? { ...body, padding } : body)
    switch (endpoint) {
      case 'discovery':
        return sendJson(res, 200, padded(discoveryDocument()))
      case 'jwks':
        return sendJson(res, 200, padded({ keys: [publicJwk] }))
      case 'authorize':
        return authorizeEndpoint(url, res)
      case 'consent':
        return consentEndpoint(req, res)
      case 'token':
        return tokenEndpoint(req, res, record, padded)
      case 'me':
        return userMe(req, res, padding)
      case 'tokenInfo':
        return tokenInfo(req, res, padding)
      case 'userinfo':
        return userinfo(req, res, padded)
      case 'unlink':
        return unlinkEndpoint(url, req, res, record, padding)
      default:
        if (server === 'api') return kapiError(res, 404, 'not found', -3)
        return errorPage(res, 404, 'NOT_FOUND', `no such page: ${url.pathname}`)
    }
  }

  function discoveryDocument() {
    return {
      issuer: authUrl,
      authorization_endpoint: `${authUrl}/oauth/authorize`,
      token_endpoint: `${authUrl}/oauth/token`,
      userinfo_endpoint: `${apiUrl}/v1/oidc/userinfo`,
      jwks_uri: `${authUrl}/.well-known/jwks.json`,
      token_endpoint_auth_methods_supported: ['client_secret_post'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      request_uri_parameter_supported: false,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      claims_supported: ['iss', 'aud', 'sub', 'auth_time', 'exp', 'iat', 'nonce', 'nickname', 'picture', 'email'],
    }
  }

  function authorizeEndpoint(url: URL, res: ServerResponse): void {
    const params = url.searchParams
    const requestedClient = params.get('client_id') ?? ''
    if (requestedClient !== clientId) return errorPage(res, 400, 'KOE101', 'the app key is not registered (invalid client_id)')
    const redirectUri = params.get('redirect_uri') ?? ''
    if (!redirectUris.includes(redirectUri)) return errorPage(res, 400, 'KOE006', 'the redirect URI is not registered for this app')
    if (params.get('response_type') !== 'code') return errorPage(res, 400, 'invalid_request', 'response_type must be code')
    const scope = params.get('scope')
    const scopes = scope === null ? undefined : splitScope(scope)
    const unknown = scopes?.filter((item) => item !== 'openid' && !(CONSENT_ITEMS as readonly string[]).includes(item)) ?? []
    if (unknown.length > 0) return errorPage(res, 400, 'KOE205', `consent items not set for this app: ${unknown.join(', ')}`)
    const challenge = params.get('code_challenge') ?? undefined
    const method = params.get('code_challenge_method') ?? (challenge ? 'plain' : undefined)
    if (challenge !== undefined && method !== 'S256') return errorPage(res, 400, 'invalid_request', 'code_challenge_method must be S256')
    const requested = scopes ? CONSENT_ITEMS.filter((item) => scopes.includes(item)) : [...CONSENT_ITEMS]
    const id = token(16)
    const entry: PendingAuthorization = {
      clientId: requestedClient,
      redirectUri,
      requested,
      // OIDC is on for this app: an ID token is issued whether or not `openid` was asked for.
      openid: true,
      expiresAt: Date.now() + CODE_TTL_MS,
    }
    const state = params.get('state')
    if (state !== null) entry.state = state
    const nonce = params.get('nonce')
    if (nonce !== null) entry.nonce = nonce
    if (challenge !== undefined) entry.codeChallenge = challenge
    pending.set(id, entry)
    send(res, 200, consentPage(id, entry), { 'content-type': 'text/html; charset=utf-8' })
  }

  async function consentEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return errorPage(res, 405, 'METHOD', 'POST the consent form')
    const form = new URLSearchParams(await readRequestBody(req))
    const id = form.get('request') ?? ''
    const entry = pending.get(id)
    pending.delete(id)
    if (!entry || entry.expiresAt <= Date.now()) return errorPage(res, 400, 'expired', 'this login request is unknown or expired; start again')
    const redirect = new URL(entry.redirectUri)
    if (form.get('action') !== 'agree') {
      redirect.searchParams.set('error', 'access_denied')
      redirect.searchParams.set('error_description', 'User denied access')
    } else {
      const account = accountFromForm(form)
      try {
        remember(account)
      } catch (error) {
        return errorPage(res, 400, 'INVALID_ACCOUNT', error instanceof Error ? error.message : String(error))
      }
      // Agreeing links the member to the app, whether or not the code is redeemed.
      link(appId, account.id)
      const code = token(48)
      const issued: IssuedCode = {
        clientId: entry.clientId,
        redirectUri: entry.redirectUri,
        memberId: account.id,
        consented: consentedItems(entry.requested, account),
        openid: entry.openid,
        authTime: now(),
        expiresAt: Date.now() + CODE_TTL_MS,
      }
      if (entry.nonce !== undefined) issued.nonce = entry.nonce
      if (entry.codeChallenge !== undefined) issued.codeChallenge = entry.codeChallenge
      codes.set(code, issued)
      redirect.searchParams.set('code', code)
    }
    if (entry.state !== undefined) redirect.searchParams.set('state', entry.state)
    res.writeHead(302, { location: redirect.href, 'cache-control': 'no-store' })
    res.end()
  }

  async function tokenEndpoint(
    req: IncomingMessage,
    res: ServerResponse,
    record: KakaoRequestRecord,
    padded: (body: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<void> {
    if (req.method !== 'POST') return kauthError(res, 405, 'invalid_request', 'POST only')
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      return kauthError(res, 400, 'invalid_request', 'content type must be application/x-www-form-urlencoded')
    }
    const form = new URLSearchParams(await readRequestBody(req))
    record.form = Object.fromEntries(form)
    // Client authentication is in the body only: a Basic header is Bad client credentials.
    if (/^basic\s/i.test(req.headers.authorization ?? '')) {
      return kauthError(res, 401, 'invalid_client', 'Bad client credentials', 'KOE010')
    }
    if (form.get('client_id') !== clientId) return kauthError(res, 401, 'invalid_client', 'Not exist client_id []', 'KOE101')
    if (clientSecret !== undefined && form.get('client_secret') !== clientSecret) {
      return kauthError(res, 401, 'invalid_client', 'Bad client credentials', 'KOE010')
    }
    const grantType = form.get('grant_type')
    if (grantType === 'refresh_token') return refreshGrant(form, res, padded)
    if (grantType !== 'authorization_code') return kauthError(res, 400, 'unsupported_grant_type', `grant_type ${grantType ?? ''} is not supported`)

    const codeValue = form.get('code') ?? ''
    const code = codes.get(codeValue)
    if (!code || code.expiresAt <= Date.now() || code.clientId !== clientId) {
      codes.delete(codeValue)
      return kauthError(res, 400, 'invalid_grant', `authorization code not found for code=${codeValue}`, 'KOE320')
    }
    // Single use: whatever happens next, this code is spent.
    codes.delete(codeValue)
    if (form.get('redirect_uri') !== code.redirectUri) return kauthError(res, 400, 'invalid_grant', 'Redirect URI mismatch.', 'KOE303')
    if (code.codeChallenge !== undefined) {
      const verifier = form.get('code_verifier') ?? ''
      const computed = createHash('sha256').update(verifier).digest('base64url')
      // Kakao's error code for a PKCE failure is not documented: none is sent.
      if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) || computed !== code.codeChallenge) {
        return kauthError(res, 400, 'invalid_grant', 'PKCE verification failed')
      }
    }
    const grant = { memberId: code.memberId, clientId: code.clientId, appId, consented: code.consented, openid: code.openid, ...(code.nonce !== undefined ? { nonce: code.nonce } : {}) }
    const issued = await issueTokens(grant, code.authTime)
    sendJson(res, 200, padded(tokenResponse(issued, grant.consented, grant.openid)))
  }

  async function refreshGrant(form: URLSearchParams, res: ServerResponse, padded: (body: Record<string, unknown>) => Record<string, unknown>) {
    const value = form.get('refresh_token') ?? ''
    const found = refreshTokens.get(value)
    if (!found || found.expiresAt <= Date.now()) {
      return kauthError(res, 400, 'invalid_grant', 'expired_or_invalid_refresh_token', 'KOE322')
    }
    const accessToken = token()
    accessTokens.set(accessToken, { ...found, expiresAt: Date.now() + ACCESS_TOKEN_TTL * 1000 })
    const body: Record<string, unknown> = { token_type: 'bearer', access_token: accessToken, expires_in: ACCESS_TOKEN_TTL }
    if (found.openid) {
      const { nonce: _nonce, ...withoutNonce } = found
      body.id_token = await signIdToken(idTokenClaims(withoutNonce, now()))
    }
    sendJson(res, 200, padded(body))
  }

  function tokenResponse(issued: { accessToken: string; refreshToken: string; idToken?: string }, consented: Set<ConsentItem>, openid: boolean) {
    return {
      token_type: 'bearer',
      access_token: issued.accessToken,
      ...(issued.idToken !== undefined ? { id_token: issued.idToken } : {}),
      expires_in: ACCESS_TOKEN_TTL,
      refresh_token: issued.refreshToken,
      refresh_token_expires_in: REFRESH_TOKEN_TTL,
      scope: [...consented, ...(openid ? ['openid'] : [])].join(' '),
    }
  }

  /** The access token of a kapi request, or undefined after answering -401. */
  function bearer(req: IncomingMessage, res: ServerResponse): IssuedToken | undefined {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    const found = match ? accessTokens.get(match[1]!) : undefined
    if (!found || found.expiresAt <= Date.now()) {
      kapiError(res, 401, 'this access token does not exist', -401)
      return undefined
    }
    return found
  }

  function userMe(req: IncomingMessage, res: ServerResponse, padding?: string): void {
    if (req.method !== 'GET' && req.method !== 'POST') return kapiError(res, 405, 'method not allowed', -3)
    const found = bearer(req, res)
    if (!found) return
    send(res, 200, userMeBody(accounts.get(found.memberId)!, found.consented, connectedAt.get(found.memberId)!, padding))
  }

  function tokenInfo(req: IncomingMessage, res: ServerResponse, padding?: string): void {
    const found = bearer(req, res)
    if (!found) return
    const expiresIn = Math.max(Math.floor((found.expiresAt - Date.now()) / 1000), 0)
    const extra = padding !== undefined ? `,"padding":${JSON.stringify(padding)}` : ''
    // Both numbers raw, as Kakao sends them: the id is a Long.
    send(res, 200, `{"id":${found.memberId},"expires_in":${expiresIn},"app_id":${found.appId}${extra}}`)
  }

  function userinfo(req: IncomingMessage, res: ServerResponse, padded: (body: Record<string, unknown>) => Record<string, unknown>): void {
    const found = bearer(req, res)
    if (!found) return
    const account = accounts.get(found.memberId)!
    const body: Record<string, unknown> = { sub: account.id }
    if (found.consented.has('profile_nickname') && account.nickname !== undefined) body.nickname = account.nickname
    if (found.consented.has('profile_image')) body.picture = account.thumbnail ?? DEFAULT_IMAGE
    if (found.consented.has('account_email') && account.email !== undefined) {
      body.email = account.email
      body.email_verified = (account.emailValid ?? true) && (account.emailVerified ?? true)
    }
    sendJson(res, 200, padded(body))
  }

  /**
   * `POST /v1/user/unlink`: with the member's `Authorization: Bearer <access token>`, or the
   * app's `Authorization: KakaoAK <admin key>` and `target_id_type=user_id&target_id=<id>`
   * (form body or query). Answers `{"id":<member id>}`, the id a raw JSON number (a Long).
   */
  async function unlinkEndpoint(url: URL, req: IncomingMessage, res: ServerResponse, record: KakaoRequestRecord, padding?: string): Promise<void> {
    if (req.method !== 'POST') return kapiError(res, 405, 'method not allowed', -3)
    const params = new URLSearchParams(url.searchParams)
    const body = await readRequestBody(req)
    if (body !== '' && (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      for (const [name, value] of new URLSearchParams(body)) params.set(name, value)
    }
    if (params.size > 0) record.form = Object.fromEntries(params)

    const authorization = req.headers.authorization ?? ''
    let memberId: string
    let fromApp: string
    let by: KakaoUnlinkRecord['by']
    if (/^KakaoAK\s/i.test(authorization)) {
      if (authorization.replace(/^KakaoAK\s+/i, '').trim() !== adminKey) return kapiError(res, 401, 'wrong admin key', -401)
      const idType = params.get('target_id_type')
      const target = params.get('target_id')
      if (!idType || !target) return kapiError(res, 400, 'target_id_type and target_id are required with an admin key', -2)
      if (idType !== 'user_id') return kapiError(res, 400, `target_id_type ${idType} is not supported; use user_id`, -2)
      if (!isMemberId(target)) return kapiError(res, 400, `target_id ${target} is not a user id`, -2)
      memberId = target
      fromApp = appId
      by = 'admin_key'
    } else if (/^Bearer\s/i.test(authorization)) {
      const found = bearer(req, res)
      if (!found) return
      memberId = found.memberId
      fromApp = found.appId
      by = 'access_token'
    } else {
      return kapiError(res, 401, 'no authentication key!', -401)
    }
    if (!links.has(`${fromApp}:${memberId}`)) return kapiError(res, 400, 'NotRegisteredUserException', -101)
    endLink(fromApp, memberId)
    unlinkLog.push({ memberId, by })
    // No unlink callback: Kakao sends none for an unlink the app itself asked for.
    const extra = padding !== undefined ? `,"padding":${JSON.stringify(padding)}` : ''
    send(res, 200, `{"id":${memberId}${extra}}`)
  }

  // --- playing the user --------------------------------------------------

  async function play(authorizationUrl: string | URL, account: KakaoAccount | undefined): Promise<URL> {
    const url = new URL(authorizationUrl)
    if (url.origin !== new URL(authUrl).origin) throw new Error(`authorization URL ${url.origin} is not this emulator (${authUrl})`)
    const page = await fetch(url, { redirect: 'manual' })
    const html = await page.text()
    if (page.status !== 200) {
      const excerpt = html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300)
      throw new Error(`kakao emulator: HTTP ${page.status} at ${url.pathname}: ${excerpt}`)
    }
    const requestId = /name="request" value="([^"]+)"/.exec(html)?.[1]
    if (!requestId) throw new Error('kakao emulator: no consent form')
    const form = account ? formFromAccount(requestId, account) : new URLSearchParams({ request: requestId, action: 'cancel' })
    const submitted = await fetch(new URL('/oauth/consent', authUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
      redirect: 'manual',
    })
    const location = submitted.headers.get('location')
    const text = await submitted.text()
    if (submitted.status !== 302 || !location) {
      throw new Error(`kakao emulator: consent failed with HTTP ${submitted.status}: ${text.replace(/<[^>]*>/g, ' ').trim().slice(0, 300)}`)
    }
    return new URL(location)
  }

  return {
    authUrl,
    apiUrl,
    appId,
    adminKey,
    requests,
    async stop() {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await Promise.all([close(authServer), close(apiServer)])
    },
    async sendUnlinkCallback(url, member, key = adminKey) {
      const body = new URLSearchParams({ app_id: appId, user_id: member.id, referrer_type: member.referrerType ?? 'UNLINK_FROM_APPS' })
      const response = await fetch(url, { method: 'POST', headers: { authorization: `KakaoAK ${key}` }, body })
      return response.status
    },
    authorize: (authorizationUrl, account) => play(authorizationUrl, account),
    deny: (authorizationUrl) => play(authorizationUrl, undefined),
    async sdkLogin(account, sdk = {}) {
      remember(account)
      const grant: Omit<IssuedToken, 'expiresAt'> = {
        memberId: account.id,
        clientId: sdk.clientId ?? clientId,
        appId: String(sdk.appId ?? appId),
        consented: consentedItems(CONSENT_ITEMS, account),
        openid: true,
        ...(sdk.nonce !== undefined ? { nonce: sdk.nonce } : {}),
      }
      const issued = await issueTokens(grant, now())
      return { accessToken: issued.accessToken, refreshToken: issued.refreshToken, idToken: issued.idToken! }
    },
    signIdToken,
    tamperNextIdToken(edit, options) {
      idTokenEdits.push({ edit, forged: options?.forged ?? false })
    },
    revokeConsent(memberId) {
      for (const [value, issued] of accessTokens) if (issued.memberId === memberId) accessTokens.delete(value)
      for (const [value, issued] of refreshTokens) if (issued.memberId === memberId) refreshTokens.delete(value)
      for (const key of [...links]) if (key.endsWith(`:${memberId}`)) endLink(key.slice(0, key.indexOf(':')), memberId)
    },
    unlinks: () => unlinkLog.map((entry) => ({ ...entry })),
    setClientSecret(secret) {
      clientSecret = secret
    },
    fail(endpoint, fault, times = 1) {
      let queue = faults.get(endpoint)
      if (!queue) faults.set(endpoint, (queue = []))
      queue.push({ fault, remaining: times })
    },
    clearFaults() {
      faults.clear()
    },
    async down() {
      await Promise.all([close(authServer), close(apiServer)])
    },
    async up() {
      if (!authServer.listening) await listen(authServer, authPort, host)
      if (!apiServer.listening) await listen(apiServer, apiPort, host)
    },
  }
}
