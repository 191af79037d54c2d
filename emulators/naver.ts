// A Naver-like login server on loopback, following Naver's documented wire format (the legacy OAuth 2.0
// flow). Tests drive it with `authorize()`; a human in a browser gets a tiny "Emulated
// Naver login" form instead of Naver's pages.
//
// Naver-like behaviour:
// - GET/POST /oauth2.0/authorize: response_type=code, client_id, redirect_uri (registered,
//   exact) and state are required. A bad client or redirect URI gets an error page, never a
//   redirect. Consent redirects with `code` and `state`; cancel with
//   `state`, `error=access_denied`, `error_description=Canceled By User`.
// - GET/POST /oauth2.0/token: grant_type, client_id, client_secret, code and state, from the
//   query or a form body. Codes are single use and bound to the state of their authorization.
//   Every error is answered with HTTP 200 and `{ error, error_description }`: a used,
//   unknown or expired code, or another state, is `invalid_request` "no valid data in
//   session"; bad client credentials are `invalid_request` "wrong client id / client secret
//   pair". Success: `{ access_token, refresh_token, token_type: "bearer", expires_in: "3600" }`
//   with expires_in as a string. No PKCE, no redirect_uri, no ID token.
// - GET/POST /v1/nid/me with `Authorization: Bearer`: `{ resultcode: "00", message:
//   "success", response: { id, ...only the fields the account has } }`; 401 with resultcode
//   "024" for an unknown, expired or revoked token, "028" without the header.
// - POST /oauth2.0/revoke: client_id, client_secret, token (token_type_hint ignored); revokes
//   the token and its pair; 200 with an empty body, even for an unknown token (or one of
//   another application, which stays alive).
// - The legacy delete at the token endpoint (removed from Naver's docs, still called by
//   apps): grant_type=delete, client_id, client_secret, access_token and
//   service_provider=NAVER (required). Revokes like /oauth2.0/revoke and answers
//   `{ access_token, result: "success" }`; a missing service_provider or access_token, or an
//   expired, revoked or unknown access token, is HTTP 200 `invalid_request` like every token
//   error. `revocations()` lists what either way actually revoked, for tests to assert on.
// - Ids are per application: an account's `id` is what our client sees; a token issued to
//   another client id names a different id derived from it.
// Everything is kept in memory.

import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readRequestBody } from './request-body.js'

export interface NaverAccount {
  /** The id our client sees: INT64 digits (old apps) or a base64-style string of up to 64 characters. */
  id: string
  email?: string
  nickname?: string
  /** The user's name (실명). */
  name?: string
  profileImage?: string
}

export interface NaverEmulatorOptions {
  clientId: string
  clientSecret: string
  redirectUris: string[]
  /** 0 or absent: a free port. */
  port?: number
  /** Interface to listen on; default 127.0.0.1. */
  host?: string
  /** Access token lifetime in seconds; Naver's default is 3600. */
  accessTokenTtl?: number
}

/** `token` covers everything at /oauth2.0/token, the legacy grant_type=delete included. */
export type NaverEndpoint = 'token' | 'profile' | 'revoke'

/** What the next call(s) to an endpoint do instead of answering normally. */
export type NaverFault =
  /** Waits this long before answering (default 5 s). */
  | { kind: 'slow'; delayMs?: number }
  /** HTTP 503 with an HTML page, as a load balancer in front of a dead service would. */
  | { kind: 'down' }
  /** Closes the connection without answering. */
  | { kind: 'disconnect' }
  /** HTTP 200 with an HTML page. */
  | { kind: 'not-json' }
  /** HTTP 200 with a syntactically valid JSON body of this many bytes (default 1 MB). */
  | { kind: 'oversized'; bytes?: number }
  /** This error JSON with HTTP `status` (default 200, as Naver's token endpoint answers), e.g. `server_error`. */
  | { kind: 'error'; error: string; description?: string; status?: number }
  /** Profile: HTTP 200 with `response` but no `id`. */
  | { kind: 'missing-id' }
  /** Profile: HTTP 200 with `id` as a JSON number. */
  | { kind: 'numeric-id' }
  /**
   * Profile: HTTP 200 with this resultcode (default "024"), and a `response` that would
   * otherwise be accepted, so that only the resultcode can refuse it.
   */
  | { kind: 'result-code'; resultcode?: string }
  /** Profile: HTTP 403, as when the application lacks the profile API permission. */
  | { kind: 'forbidden' }
  /** Profile: 401 "024" with a `WWW-Authenticate: Bearer` challenge (whether Naver sends one is unverified). */
  | { kind: 'challenge' }

/** A revocation that ended a token that still worked (or one whose pair still worked). */
export interface NaverRevocation {
  /** The kind of token the application sent. */
  token: 'access_token' | 'refresh_token'
  /** The account whose token it was (the id our client sees). */
  accountId: string
  /** `revoke`: POST /oauth2.0/revoke; `delete`: the legacy grant_type=delete at the token endpoint. */
  via: 'revoke' | 'delete'
}

export interface NaverEmulator {
  /** `http://127.0.0.1:<port>`: the NAVER_AUTH_URL (nid.naver.com). */
  authUrl: string
  /** `http://127.0.0.1:<port>/openapi`: the NAVER_API_URL (openapi.naver.com). */
  apiUrl: string
  stop(): Promise<void>
  /**
   * Plays the user: opens the authorization URL, signs in as `account`, agrees, and returns
   * the redirect to the client's redirect_uri (with `code` and `state`) without fetching it.
   */
  authorize(authorizationUrl: string | URL, account: NaverAccount): Promise<URL>
  /** Like authorize(), but the user presses "Cancel": the redirect carries `error=access_denied`. */
  deny(authorizationUrl: string | URL): Promise<URL>
  /**
   * What the Naver SDK does on a phone: signs `account` in for `clientId` (ours by default)
   * and returns the access token the app would hold.
   */
  sdkLogin(account: NaverAccount, clientId?: string): string
  /** The id `account` has in the application `clientId` (ids are per application). */
  idFor(account: NaverAccount, clientId: string): string
  /**
   * The user withdraws consent ("서비스 동의 철회") for our application: every token and
   * every unredeemed code of that account dies at once.
   */
  revokeConsent(accountId: string): void
  /** The operator reissued the client secret in the console: the old one stops working. */
  setClientSecret(secret: string): void
  /** The next `times` calls to `endpoint` misbehave as `fault` says. */
  failNext(endpoint: NaverEndpoint, fault: NaverFault, times?: number): void
  /** Forgets pending faults. */
  clearFaults(): void
  /** Every revocation that revoked a live token, oldest first; unknown or dead tokens are not in it. */
  revocations(): NaverRevocation[]
  /** Requests received so far, by endpoint. */
  readonly requests: Readonly<Record<'authorize' | 'token' | 'profile' | 'revoke', number>>
}

interface IssuedCode {
  account: NaverAccount
  state: string
  redirectUri: string
  expiresAt: number
}

interface IssuedToken {
  account: NaverAccount
  clientId: string
  /** The refresh token of the pair (for an access token), or the access token (for a refresh token). */
  pair: string
  expiresAt: number
}

const CODE_TTL_MS = 10 * 60_000
const NO_SESSION = { error: 'invalid_request', error_description: 'no valid data in session' }
const WRONG_CLIENT = { error: 'invalid_request', error_description: 'wrong client id / client secret pair' }

const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

export async function startNaverEmulator(options: NaverEmulatorOptions): Promise<NaverEmulator> {
  const { clientId, redirectUris } = options
  let clientSecret = options.clientSecret
  if (!clientId || !clientSecret) throw new Error('clientId and clientSecret are required')
  if (redirectUris.length === 0) throw new Error('at least one redirect URI is required')
  const host = options.host ?? '127.0.0.1'
  const accessTokenTtl = options.accessTokenTtl ?? 3600

  const codes = new Map<string, IssuedCode>()
  const accessTokens = new Map<string, IssuedToken>()
  const refreshTokens = new Map<string, IssuedToken>()
  const faults: Record<NaverEndpoint, NaverFault[]> = { token: [], profile: [], revoke: [] }
  const revocationLog: NaverRevocation[] = []
  const requests = { authorize: 0, token: 0, profile: 0, revoke: 0 }
  const timers = new Set<NodeJS.Timeout>()

  const idFor = (account: NaverAccount, forClient: string): string => {
    if (forClient === clientId) return account.id
    // Another application sees the same person under another id, in the new format.
    return createHash('sha256').update(`${forClient}\0${account.id}`).digest('base64').slice(0, 43)
  }

  const issueTokens = (account: NaverAccount, forClient: string) => {
    // Naver's access tokens are base64 with + / =, e.g. "AAAAPIuf0L+qfDkMABQ3...".
    const accessToken = `AAAA${randomBytes(60).toString('base64')}`
    const refreshToken = randomBytes(24).toString('base64url')
    const expiresAt = Date.now() + accessTokenTtl * 1000
    accessTokens.set(accessToken, { account, clientId: forClient, pair: refreshToken, expiresAt })
    refreshTokens.set(refreshToken, { account, clientId: forClient, pair: accessToken, expiresAt: Number.POSITIVE_INFINITY })
    return { accessToken, refreshToken }
  }

  // --- HTTP ------------------------------------------------------------------------

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', 'cache-control': 'no-store' })
    res.end(text)
  }

  const errorPage = (res: ServerResponse, status: number, message: string) => {
    res.writeHead(status, { 'content-type': 'text/html;charset=utf-8' })
    res.end(`<!doctype html><meta charset="utf-8"><title>Emulated Naver: error</title><h1>Emulated Naver: error</h1><p>${escapeHtml(message)}</p>`)
  }

  /** Applies the next pending fault of `endpoint`; true when it answered (or will) instead of the handler. */
  const applyFault = async (endpoint: NaverEndpoint, res: ServerResponse): Promise<boolean> => {
    const fault = faults[endpoint].shift()
    if (!fault) return false
    switch (fault.kind) {
      case 'slow':
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer)
            resolve()
          }, fault.delayMs ?? 5000)
          timers.add(timer)
        })
        return res.destroyed
      case 'down':
        res.writeHead(503, { 'content-type': 'text/html;charset=utf-8' })
        res.end('<!doctype html><title>503 Service Temporarily Unavailable</title><h1>503 Service Temporarily Unavailable</h1>')
        return true
      case 'disconnect':
        res.socket?.destroy()
        return true
      case 'not-json':
        res.writeHead(200, { 'content-type': 'text/html;charset=utf-8' })
        res.end('<!doctype html><title>NAVER</title><p>점검 중입니다 (maintenance)</p>')
        return true
      case 'oversized': {
        const bytes = fault.bytes ?? 1024 * 1024
        const filler = 'x'.repeat(Math.max(0, bytes - 64))
        json(res, 200, endpoint === 'token'
          ? { access_token: 'AAAAoversized', token_type: 'bearer', expires_in: '3600', padding: filler }
          : endpoint === 'revoke'
            ? { result: 'success', padding: filler }
            : { resultcode: '00', message: 'success', response: { id: 'oversized', nickname: filler } })
        return true
      }
      case 'error':
        json(res, fault.status ?? 200, { error: fault.error, error_description: fault.description ?? fault.error })
        return true
      case 'missing-id':
        json(res, 200, { resultcode: '00', message: 'success', response: { nickname: 'No Id' } })
        return true
      case 'numeric-id':
        json(res, 200, { resultcode: '00', message: 'success', response: { id: 32742776, nickname: 'Number' } })
        return true
      case 'result-code':
        json(res, 200, {
          resultcode: fault.resultcode ?? '024',
          message: 'Authentication failed / 인증에 실패했습니다.',
          response: { id: 'not-to-be-trusted', nickname: 'Nobody' },
        })
        return true
      case 'forbidden':
        json(res, 403, { resultcode: '403', message: 'Forbidden / 호출 권한이 없습니다.' })
        return true
      case 'challenge':
        res.setHeader('www-authenticate', 'Bearer realm="naver", error="invalid_token"')
        json(res, 401, { resultcode: '024', message: 'Authentication failed / 인증에 실패했습니다.' })
        return true
    }
  }

  const readBody = async (req: IncomingMessage): Promise<URLSearchParams> => {
    const body = await readRequestBody(req)
    const type = req.headers['content-type'] ?? ''
    if (body === '' || !type.startsWith('application/x-www-form-urlencoded')) return new URLSearchParams()
    return new URLSearchParams(body)
  }

  /** Query and form body together, as Naver accepts either (body wins). */
  const paramsOf = async (req: IncomingMessage, url: URL): Promise<URLSearchParams> => {
    const params = new URLSearchParams(url.searchParams)
    if (req.method === 'POST') for (const [key, value] of await readBody(req)) params.set(key, value)
    return params
  }

  const redirectBack = (res: ServerResponse, redirectUri: string, query: Record<string, string>) => {
    const target = new URL(redirectUri)
    for (const [key, value] of Object.entries(query)) target.searchParams.set(key, value)
    res.writeHead(302, { location: target.href, 'cache-control': 'no-store' })
    res.end()
  }

  async function authorizeEndpoint(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    requests.authorize += 1
    const params = await paramsOf(req, url)
    const redirectUri = params.get('redirect_uri') ?? ''
    const state = params.get('state') ?? ''
    // Problems with the client or the callback URL are shown to the user, never redirected.
    if (params.get('client_id') !== clientId) return errorPage(res, 400, 'unknown client_id')
    if (!redirectUris.includes(redirectUri)) return errorPage(res, 400, 'the callback URL is not registered for this application')
    if (!state) return errorPage(res, 400, 'state is required')
    if (params.get('response_type') !== 'code') {
      return redirectBack(res, redirectUri, { state, error: 'unsupported_response_type', error_description: 'response_type must be code' })
    }

    const action = params.get('action')
    if (req.method === 'GET' || action === null) {
      res.writeHead(200, { 'content-type': 'text/html;charset=utf-8', 'cache-control': 'no-store' })
      res.end(loginPage(params))
      return
    }
    if (action === 'deny') {
      return redirectBack(res, redirectUri, { state, error: 'access_denied', error_description: 'Canceled By User' })
    }
    const account = accountFromForm(params)
    if (!account) return errorPage(res, 400, 'id is required')
    const code = randomBytes(12).toString('base64url')
    codes.set(code, { account, state, redirectUri, expiresAt: Date.now() + CODE_TTL_MS })
    return redirectBack(res, redirectUri, { code, state })
  }

  async function tokenEndpoint(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    requests.token += 1
    const params = await paramsOf(req, url)
    if (await applyFault('token', res)) return
    if (params.get('client_id') !== clientId || params.get('client_secret') !== clientSecret) return json(res, 200, WRONG_CLIENT)
    const grantType = params.get('grant_type')
    if (grantType === 'authorization_code') {
      const code = params.get('code') ?? ''
      const issued = codes.get(code)
      if (!issued || issued.expiresAt <= Date.now() || issued.state !== params.get('state')) return json(res, 200, NO_SESSION)
      codes.delete(code)
      const { accessToken, refreshToken } = issueTokens(issued.account, clientId)
      return json(res, 200, { access_token: accessToken, refresh_token: refreshToken, token_type: 'bearer', expires_in: String(accessTokenTtl) })
    }
    if (grantType === 'refresh_token') {
      const refresh = refreshTokens.get(params.get('refresh_token') ?? '')
      if (!refresh || refresh.clientId !== clientId) return json(res, 200, { error: 'invalid_request', error_description: 'invalid refresh_token' })
      accessTokens.delete(refresh.pair)
      const accessToken = `AAAA${randomBytes(60).toString('base64')}`
      accessTokens.set(accessToken, { account: refresh.account, clientId, pair: params.get('refresh_token')!, expiresAt: Date.now() + accessTokenTtl * 1000 })
      refresh.pair = accessToken
      return json(res, 200, { access_token: accessToken, token_type: 'bearer', expires_in: String(accessTokenTtl) })
    }
    if (grantType === 'delete') {
      if (params.get('service_provider') !== 'NAVER') {
        return json(res, 200, { error: 'invalid_request', error_description: 'service_provider must be NAVER' })
      }
      const accessToken = params.get('access_token')
      if (!accessToken) return json(res, 200, { error: 'invalid_request', error_description: 'access_token is required' })
      const access = accessTokens.get(accessToken)
      // Only a valid access token deletes: an expired one must be refreshed first.
      if (!access || access.clientId !== clientId || access.expiresAt <= Date.now()) {
        return json(res, 200, { error: 'invalid_request', error_description: 'invalid access_token' })
      }
      revoke(accessToken, 'delete')
      return json(res, 200, { access_token: accessToken, result: 'success' })
    }
    return json(res, 200, { error: 'unsupported_grant_type', error_description: 'unsupported grant_type' })
  }

  /**
   * Revokes a token of this application and its pair; recorded when either still worked.
   * Tokens of other applications, and unknown ones, are left alone.
   */
  function revoke(value: string, via: NaverRevocation['via']): void {
    const access = accessTokens.get(value)
    const refresh = refreshTokens.get(value)
    const found = access ?? refresh
    if (!found || found.clientId !== clientId) return
    const [accessValue, refreshValue] = access ? [value, access.pair] : [refresh!.pair, value]
    const pairedAccess = accessTokens.get(accessValue)
    const live = (pairedAccess !== undefined && pairedAccess.expiresAt > Date.now()) || refreshTokens.has(refreshValue)
    accessTokens.delete(accessValue)
    refreshTokens.delete(refreshValue)
    if (live) revocationLog.push({ token: access ? 'access_token' : 'refresh_token', accountId: found.account.id, via })
  }

  async function profileEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests.profile += 1
    for await (const _ of req) {
      // drain a POST body
    }
    if (await applyFault('profile', res)) return
    const authorization = req.headers.authorization
    if (!authorization) return json(res, 401, { resultcode: '028', message: 'Authentication header not exists / OAuth 인증 헤더(authorization header)가 없습니다.' })
    const match = /^Bearer\s+(\S+)$/i.exec(authorization)
    const token = match ? accessTokens.get(match[1]!) : undefined
    if (!token || token.expiresAt <= Date.now()) {
      return json(res, 401, { resultcode: '024', message: 'Authentication failed / 인증에 실패했습니다.' })
    }
    const { account } = token
    const response: Record<string, string> = { id: idFor(account, token.clientId) }
    if (account.nickname !== undefined) response.nickname = account.nickname
    if (account.name !== undefined) response.name = account.name
    if (account.email !== undefined) response.email = account.email
    if (account.profileImage !== undefined) response.profile_image = account.profileImage
    return json(res, 200, { resultcode: '00', message: 'success', response })
  }

  async function revokeEndpoint(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    requests.revoke += 1
    const params = await paramsOf(req, url)
    if (await applyFault('revoke', res)) return
    if (req.method !== 'POST') return json(res, 405, { error: 'invalid_request', error_description: 'use POST' })
    if (params.get('client_id') !== clientId || params.get('client_secret') !== clientSecret) {
      return json(res, 401, { error: 'unauthorized_client', error_description: 'Client authentication failed.' })
    }
    const token = params.get('token')
    if (!token) return json(res, 400, { error: 'invalid_request', error_description: 'token is required' })
    revoke(token, 'revoke')
    res.writeHead(200).end()
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid')
    const route =
      url.pathname === '/oauth2.0/authorize' ? authorizeEndpoint(req, res, url)
      : url.pathname === '/oauth2.0/token' ? tokenEndpoint(req, res, url)
      : url.pathname === '/oauth2.0/revoke' ? revokeEndpoint(req, res, url)
      : url.pathname === '/openapi/v1/nid/me' ? profileEndpoint(req, res)
      : Promise.resolve(errorPage(res, 404, `no page at ${url.pathname}`))
    route.catch((error: unknown) => {
      if (res.headersSent || res.destroyed) {
        res.destroy()
        return
      }
      errorPage(res, 500, error instanceof Error ? error.message : String(error))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  const authUrl = `http://${urlHost}:${port}`
  // openapi.naver.com is another host in production; here it is a path prefix on the same server.
  const apiUrl = `${authUrl}/openapi`

  // --- playing the user ----------------------------------------------------------------

  async function play(authorizationUrl: string | URL, form: URLSearchParams): Promise<URL> {
    const url = new URL(authorizationUrl)
    if (url.origin !== new URL(authUrl).origin || url.pathname !== '/oauth2.0/authorize') {
      throw new Error(`authorization URL ${url.href} is not this emulator's /oauth2.0/authorize`)
    }
    const page = await fetch(url, { redirect: 'manual' })
    const html = await page.text()
    if (page.status !== 200) throw new Error(`naver emulator: HTTP ${page.status} at the authorization URL: ${html.replace(/<[^>]*>/g, ' ').trim().slice(0, 300)}`)
    const body = new URLSearchParams(url.searchParams)
    for (const [key, value] of form) body.set(key, value)
    const answer = await fetch(new URL('/oauth2.0/authorize', authUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      redirect: 'manual',
    })
    await answer.arrayBuffer()
    const location = answer.headers.get('location')
    if (answer.status !== 302 || !location) throw new Error(`naver emulator: expected a redirect, got HTTP ${answer.status}`)
    return new URL(location)
  }

  return {
    authUrl,
    apiUrl,
    async stop() {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
    authorize: (authorizationUrl, account) => play(authorizationUrl, formFromAccount(account)),
    deny: (authorizationUrl) => play(authorizationUrl, new URLSearchParams({ action: 'deny' })),
    sdkLogin: (account, forClient = clientId) => issueTokens({ ...account }, forClient).accessToken,
    idFor,
    revokeConsent(accountId) {
      for (const [token, issued] of accessTokens) if (issued.account.id === accountId && issued.clientId === clientId) accessTokens.delete(token)
      for (const [token, issued] of refreshTokens) if (issued.account.id === accountId && issued.clientId === clientId) refreshTokens.delete(token)
      for (const [code, issued] of codes) if (issued.account.id === accountId) codes.delete(code)
    },
    setClientSecret(secret) {
      clientSecret = secret
    },
    failNext(endpoint, fault, times = 1) {
      for (let i = 0; i < times; i++) faults[endpoint].push(fault)
    },
    clearFaults() {
      faults.token.length = 0
      faults.profile.length = 0
      faults.revoke.length = 0
    },
    revocations: () => revocationLog.map((entry) => ({ ...entry })),
    requests,
  }
}

function loginPage(params: URLSearchParams): string {
  const v = (s: string | null) => escapeHtml(s ?? '')
  const hidden = ['response_type', 'client_id', 'redirect_uri', 'state', 'auth_type']
    .filter((name) => params.has(name))
    .map((name) => `<input type="hidden" name="${name}" value="${v(params.get(name))}">`)
    .join('\n')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Emulated Naver login</title></head>
<body style="font-family:sans-serif;max-width:28em;margin:2em auto">
<h1>Emulated Naver login</h1>
<p>Application <code>${v(params.get('client_id'))}</code> asks for your Naver profile. No real Naver account is involved.</p>
<form method="post" action="/oauth2.0/authorize">
${hidden}
<p><label>id (INT64 digits or base64-style)<br><input name="id" required value="32742776"></label></p>
<p><label>nickname<br><input name="nickname" value="OpenAPI"></label></p>
<p><label>name<br><input name="name" value=""></label></p>
<p><label>email<br><input name="email" type="email" value="openapi@naver.com"></label></p>
<p><label>profile_image<br><input name="profileImage" value=""></label></p>
<p><button type="submit" name="action" value="agree">동의하기 (Agree)</button>
<button type="submit" name="action" value="deny" formnovalidate>취소 (Cancel)</button></p>
</form></body></html>`
}

function accountFromForm(form: URLSearchParams): NaverAccount | undefined {
  const text = (name: string) => {
    const value = form.get(name)
    return value === null || value === '' ? undefined : value
  }
  // The id is kept exactly as typed or sent: it is the subject under test.
  const id = form.get('id')
  if (!id) return undefined
  const account: NaverAccount = { id }
  const email = text('email')
  if (email !== undefined) account.email = email
  const nickname = text('nickname')
  if (nickname !== undefined) account.nickname = nickname
  const name = text('name')
  if (name !== undefined) account.name = name
  const profileImage = text('profileImage')
  if (profileImage !== undefined) account.profileImage = profileImage
  return account
}

function formFromAccount(account: NaverAccount): URLSearchParams {
  const form = new URLSearchParams({ action: 'agree', id: account.id })
  if (account.email !== undefined) form.set('email', account.email)
  if (account.nickname !== undefined) form.set('nickname', account.nickname)
  if (account.name !== undefined) form.set('name', account.name)
  if (account.profileImage !== undefined) form.set('profileImage', account.profileImage)
  return form
}
