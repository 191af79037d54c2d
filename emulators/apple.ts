// A Sign in with Apple server on loopback, following Apple's wire format: discovery,
// /auth/authorize, /auth/token, /auth/revoke and /auth/keys under one issuer. Apple is an
// OpenID provider with habits no generic one has, which is why this is hand-written (a
// node:http server, jose for the tokens) rather than oidc-provider:
//   - the client_secret is an ES256 JWT the developer signs with their .p8 key (kid = key
//     id, iss = Team ID, sub = the client id, aud = https://appleid.apple.com whatever URL
//     the server is reached at, at most 15777000 s from iat to exp); every failure is a
//     bare `{"error":"invalid_client"}`;
//   - asking for the `name` or `email` scope forces response_mode=form_post: the browser
//     gets a self-submitting form and POSTs the callback cross-site; the `user` field (name
//     and email as JSON) comes on the first authorization of a user for a client only;
//   - one web client (the Services ID) and native clients (bundle IDs) share the server:
//     an iOS app gets an identityToken (aud = bundle ID) and an authorizationCode that the
//     backend exchanges as that bundle ID, without redirect_uri;
//   - boolean claims travel as "true"/"false" strings or as booleans (Apple sends both);
//   - /auth/revoke (RFC 7009) ends the user's authorization of the app altogether.
//
// Tests play the user with `authorize(url, account)`, which returns the form Apple would
// have the browser POST, without posting it; a human gets a small sign-in page. `fail()`
// makes the next call of an endpoint fail or hang. Everything is kept in memory.

import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import * as jose from 'jose'
import { close, listen } from './loopback-server.js'
import { readRequestBody } from './request-body.js'

export interface AppleEmulatorOptions {
  /** The developer's Team ID: the client_secret's `iss`. */
  teamId: string
  /** The id of the .p8 key: the client_secret header's `kid`. */
  keyId: string
  /** PEM (SPKI) public half of the developer's ES256 .p8 key: verifies client_secret JWTs. */
  developerPublicKey: string
  /** The web client id (Services ID). */
  servicesId: string
  /** Native client ids (iOS bundle IDs). */
  bundleIds: string[]
  /** Registered web return URLs, compared exactly. */
  redirectUris: string[]
  /** 0 or absent: a free port. */
  port?: number
  host?: string
}

export interface AppleAccount {
  /** Apple's stable user id for the team, e.g. 001234.0123456789abcdef.1234. */
  sub: string
  email?: string
  /** Default true when `email` is given. */
  emailVerified?: boolean
  /** Default: true when `email` ends with @privaterelay.appleid.com. */
  isPrivateEmail?: boolean
  /** How the boolean claims travel; Apple sends both forms. Default 'string' ("true"/"false"). */
  booleans?: 'string' | 'boolean'
  name?: { firstName?: string; lastName?: string }
  /** Native identity tokens only: 0 unsupported, 1 unknown, 2 likely real. Default 2. */
  realUserStatus?: 0 | 1 | 2
}

/** What Apple has the browser POST to the redirect URI (or, for query/fragment mode, the redirect's parameters). */
export interface AppleFormPost {
  action: string
  fields: Record<string, string>
}

export interface AppleTokenRequestRecord {
  clientId: string
  grantType: string
  /** 'ok' or the error code answered (for an injected fault: its body's `error`, `http_<status>` or 'hang'). */
  outcome: string
  /** The client_secret's `iat`, whenever the secret parsed as a JWT. */
  clientSecretIat?: number
}

export interface AppleRevocation {
  clientId: string
  token: string
  tokenTypeHint?: string
}

export type AppleFault = { kind: 'status'; status: number; body?: unknown } | { kind: 'hang' }

export type AppleNotificationType = 'consent-revoked' | 'account-delete' | 'email-disabled' | 'email-enabled'

export interface AppleEmulator {
  /** `http://127.0.0.1:<port>`: APPLE_ISSUER, and the ID tokens' `iss`. */
  issuer: string
  /** Plays the user: signs in as `account` and returns the callback Apple would send, without sending it. */
  authorize(authorizationUrl: string | URL, account: AppleAccount): Promise<AppleFormPost>
  /** The user presses Cancel: `{ error: 'user_cancelled_authorize', state }`. */
  deny(authorizationUrl: string | URL): Promise<AppleFormPost>
  /** What ASAuthorizationAppleIDCredential gives an iOS app; fullName and email on the first sign-in only. */
  nativeSignIn(
    bundleId: string,
    account: AppleAccount,
    options?: { nonce?: string },
  ): Promise<{ identityToken: string; authorizationCode: string; fullName?: { givenName?: string; familyName?: string }; email?: string }>
  /** Signs arbitrary claims with the emulator's ID token key (expired or otherwise odd tokens). */
  signIdToken(claims: Record<string, unknown>): Promise<string>
  /** The token endpoint's next ID token is signed under the emulator's kid by a key that is not in its JWKS (an answer forged on its way). */
  forgeNextIdToken(): void
  /**
   * A server-to-server notification as Apple sends it to the registered endpoint: the body
   * `{"payload": <JWS>}` signed with the emulator's key; `events` is a JSON string
   * `{type, sub, event_time, ...}`. `claims` overrides the JWS claims (aud, iat, jti...).
   */
  notification(event: { type: AppleNotificationType; sub: string; email?: string }, claims?: Record<string, unknown>): Promise<{ payload: string }>
  /** Sends a notification to `url` (the gateway's /webhooks/apple); returns the HTTP status. */
  notify(url: string, event: { type: AppleNotificationType; sub: string; email?: string }): Promise<number>
  /** Every /auth/token call, oldest first. */
  tokenRequests(): AppleTokenRequestRecord[]
  /** Every authenticated /auth/revoke call, oldest first. */
  revocations(): AppleRevocation[]
  /** The next call of that endpoint gets this instead: an HTTP status+JSON body, or no answer until stop(). */
  fail(endpoint: 'token' | 'keys' | 'revoke', fault: AppleFault): void
  stop(): Promise<void>
}

// ---------------------------------------------------------------------------

/** The audience of every client_secret: Apple's own host, not the URL it was sent to. */
const APPLE_AUDIENCE = 'https://appleid.apple.com'
const MAX_SECRET_LIFETIME = 15_777_000
const IAT_SKEW = 60
const CODE_TTL_MS = 5 * 60_000
const PENDING_TTL_MS = 10 * 60_000
const ID_TOKEN_TTL = 600
const ACCESS_TOKEN_TTL = 3600
const DECISION_PATH = '/auth/emulator/decision'
const JSON_TYPE = 'application/json;charset=UTF-8'
const HTML_TYPE = 'text/html; charset=utf-8'

type Scope = 'name' | 'email'
type ResponseMode = 'query' | 'fragment' | 'form_post'

interface PendingAuthorization {
  clientId: string
  redirectUri: string
  idToken: boolean
  responseMode: ResponseMode
  scopes: Scope[]
  state?: string
  nonce?: string
  codeChallenge?: string
  expiresAt: number
}

/** What a code, refresh token and ID tokens are about: one user's sign-in to one client. */
interface Grant {
  clientId: string
  account: AppleAccount
  /** The user shared the email with this client (email scope at the first authorization). */
  emailShared: boolean
  authTime: number
}

interface IssuedCode extends Grant {
  /** Web codes only: native ones are bound to the bundle id alone. */
  redirectUri?: string
  nonce?: string
  codeChallenge?: string
  expiresAt: number
}

const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const unescapeHtml = (value: string): string => value.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
const now = () => Math.floor(Date.now() / 1000)
const randomToken = (bytes = 32) => randomBytes(bytes).toString('base64url')
/** c_hash / at_hash: the left half of the SHA-256 of the value, base64url. */
const halfHash = (value: string) => createHash('sha256').update(value).digest().subarray(0, 16).toString('base64url')
const consentKey = (clientId: string, sub: string) => `${clientId}\n${sub}`

/** How a faulted token call is recorded: the fault body's `error`, else `http_<status>`, or 'hang'. */
function faultOutcome(fault: AppleFault): string {
  if (fault.kind === 'hang') return 'hang'
  const error = (fault.body as { error?: unknown } | null | undefined)?.error
  return typeof error === 'string' ? error : `http_${fault.status}`
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...headers })
  res.end(body)
}

const sendJson = (res: ServerResponse, status: number, body: unknown) => send(res, status, JSON.stringify(body))

/** Apple's authorize errors are pages shown to the user, never redirects. */
function errorPage(res: ServerResponse, status: number, code: string, message: string): void {
  send(
    res,
    status,
    `<!doctype html><meta charset="utf-8"><title>Emulated Apple: ${escapeHtml(code)}</title><h1>${escapeHtml(code)}</h1><p>${escapeHtml(message)}</p>`,
    { 'content-type': HTML_TYPE },
  )
}

function checkAccount(account: AppleAccount): void {
  if (typeof account.sub !== 'string' || !/^\S{1,255}$/.test(account.sub)) throw new Error('apple emulator: account.sub must be a non-empty string without spaces')
  if (account.realUserStatus !== undefined && ![0, 1, 2].includes(account.realUserStatus)) throw new Error('apple emulator: realUserStatus must be 0, 1 or 2')
}

/** Apple's boolean claims, in the account's chosen form. */
const booleanClaim = (account: AppleAccount, value: boolean): boolean | string => (account.booleans === 'boolean' ? value : String(value))

function emailClaims(account: AppleAccount): Record<string, unknown> {
  if (account.email === undefined) return {}
  const isPrivate = account.isPrivateEmail ?? account.email.toLowerCase().endsWith('@privaterelay.appleid.com')
  return {
    email: account.email,
    email_verified: booleanClaim(account, account.emailVerified ?? true),
    is_private_email: booleanClaim(account, isPrivate),
  }
}

/** The form_post `user` field: `{"name":{"firstName","lastName"},"email"}`, for the scopes asked. */
function userField(account: AppleAccount, scopes: Scope[]): string {
  const user: Record<string, unknown> = {}
  if (scopes.includes('name')) {
    const name: Record<string, string> = {}
    if (account.name?.firstName !== undefined) name.firstName = account.name.firstName
    if (account.name?.lastName !== undefined) name.lastName = account.name.lastName
    user.name = name
  }
  if (scopes.includes('email') && account.email !== undefined) user.email = account.email
  return JSON.stringify(user)
}

function signInPage(requestId: string, pending: PendingAuthorization): string {
  const sharing = pending.scopes.length > 0 ? pending.scopes.join(' and ') : 'nothing beyond your Apple ID'
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Emulated Apple sign-in</title></head>
<body style="font-family:-apple-system,sans-serif;max-width:28em;margin:2em auto">
<h1>Emulated Apple sign-in</h1>
<p><code>${escapeHtml(pending.clientId)}</code> asks you to sign in with your Apple ID, sharing ${escapeHtml(sharing)}. No real Apple account is involved.</p>
<form method="post" action="${DECISION_PATH}">
<input type="hidden" name="request" value="${escapeHtml(requestId)}">
<p><label>sub (user id)<br><input name="sub" required value="001234.0123456789abcdef0123456789abcdef.1234"></label></p>
<p><label>email<br><input name="email" type="email" value="dev@privaterelay.appleid.com"></label>
<label><input type="checkbox" name="email_verified" value="true" checked> verified</label></p>
<p><label>first name<br><input name="first_name" value="Dev"></label></p>
<p><label>last name<br><input name="last_name" value="User"></label></p>
<p><label>boolean claims as <select name="booleans"><option value="string">"true"/"false"</option><option value="boolean">true/false</option></select></label></p>
<p><button type="submit" name="action" value="continue">Continue</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button></p>
</form></body></html>`
}

/** How Apple's form_post works: a page whose inline script POSTs the fields to the redirect URI. */
function formPostPage(action: string, fields: Record<string, string>): string {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Emulated Apple sign-in</title></head>
<body>
<form method="post" action="${escapeHtml(action)}">
${inputs}
<noscript><button type="submit">Continue</button></noscript>
</form>
<script>document.forms[0].submit()</script>
</body></html>`
}

/** The form a test's account becomes; the page's own inputs plus the flags it derives for a human. */
function decisionForm(requestId: string, account: AppleAccount): URLSearchParams {
  checkAccount(account)
  const form = new URLSearchParams({ request: requestId, action: 'continue', sub: account.sub, booleans: account.booleans ?? 'string' })
  if (account.email !== undefined) {
    form.set('email', account.email)
    form.set('email_verified', String(account.emailVerified ?? true))
    if (account.isPrivateEmail !== undefined) form.set('is_private_email', String(account.isPrivateEmail))
  }
  if (account.name?.firstName !== undefined) form.set('first_name', account.name.firstName)
  if (account.name?.lastName !== undefined) form.set('last_name', account.name.lastName)
  return form
}

function accountFromForm(form: URLSearchParams): AppleAccount {
  const text = (name: string) => form.get(name)?.trim() || undefined
  const account: AppleAccount = { sub: text('sub') ?? '', booleans: form.get('booleans') === 'boolean' ? 'boolean' : 'string' }
  const email = text('email')
  if (email !== undefined) {
    account.email = email
    account.emailVerified = form.get('email_verified') === 'true'
    const isPrivate = form.get('is_private_email')
    if (isPrivate !== null) account.isPrivateEmail = isPrivate === 'true'
  }
  const firstName = text('first_name')
  const lastName = text('last_name')
  if (firstName !== undefined || lastName !== undefined) {
    account.name = {}
    if (firstName !== undefined) account.name.firstName = firstName
    if (lastName !== undefined) account.name.lastName = lastName
  }
  return account
}

/** The emulator's answer to the user's decision, read back into `{ action, fields }`. */
function callbackFromAnswer(status: number, location: string | null, html: string): AppleFormPost {
  if ((status === 302 || status === 303) && location) {
    // query or fragment mode: a plain redirect carrying the parameters.
    const hash = location.indexOf('#')
    if (hash >= 0) return { action: location.slice(0, hash), fields: Object.fromEntries(new URLSearchParams(location.slice(hash + 1))) }
    const url = new URL(location)
    const fields = Object.fromEntries(url.searchParams)
    url.search = ''
    return { action: url.href, fields }
  }
  const action = /<form method="post" action="([^"]*)"/.exec(html)?.[1]
  if (status !== 200 || action === undefined) {
    throw new Error(`apple emulator: sign-in failed with HTTP ${status}: ${html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300)}`)
  }
  const fields: Record<string, string> = {}
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) fields[unescapeHtml(name!)] = unescapeHtml(value!)
  return { action: unescapeHtml(action), fields }
}

export async function startAppleEmulator(options: AppleEmulatorOptions): Promise<AppleEmulator> {
  const { teamId, keyId, servicesId, bundleIds, redirectUris } = options
  if (!teamId || !keyId || !servicesId) throw new Error('apple emulator: teamId, keyId and servicesId are required')
  if (redirectUris.length === 0) throw new Error('apple emulator: at least one redirect URI is required')
  const developerKey = await jose.importSPKI(options.developerPublicKey, 'ES256')
  const host = options.host ?? '127.0.0.1'

  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true })
  const kid = randomToken(8)
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }

  const pending = new Map<string, PendingAuthorization>()
  const codes = new Map<string, IssuedCode>()
  const refreshTokens = new Map<string, Grant>()
  const accessTokens = new Map<string, { clientId: string; sub: string }>()
  /** Who has authorized which client, and whether they shared their email with it. */
  const consents = new Map<string, { emailShared: boolean }>()
  const faults = new Map<'token' | 'keys' | 'revoke', AppleFault>()
  const tokenLog: AppleTokenRequestRecord[] = []
  const revocationLog: AppleRevocation[] = []

  const server = createServer((req, res) => {
    dispatch(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy()
      const tooLarge = error instanceof Error && error.message === 'request body too large'
      // Answer at once and drop the connection rather than read the rest of an oversized body.
      if (tooLarge) return send(res, 413, JSON.stringify({ error: 'invalid_request' }), { connection: 'close' })
      sendJson(res, 500, { error: 'server_error' })
    })
  })
  const port = await listen(server, options.port ?? 0, host)
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  const issuer = `http://${urlHost}:${port}`

  const knownClient = (clientId: string) => clientId === servicesId || bundleIds.includes(clientId)

  function takeFault(endpoint: 'token' | 'keys' | 'revoke'): AppleFault | undefined {
    const fault = faults.get(endpoint)
    faults.delete(endpoint)
    return fault
  }

  /** A fault's answer; a hanging request is left open, and stop() closes its connection. */
  function applyFault(res: ServerResponse, fault: AppleFault): void {
    if (fault.kind === 'hang') return
    send(res, fault.status, fault.body === undefined ? '' : JSON.stringify(fault.body))
  }

  async function signIdToken(claims: Record<string, unknown>, key = privateKey): Promise<string> {
    return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key)
  }
  const { privateKey: strangersKey } = await jose.generateKeyPair('RS256')
  let forgeNext = false

  async function notification(event: { type: AppleNotificationType; sub: string; email?: string }, claims: Record<string, unknown> = {}) {
    const events = JSON.stringify({ ...event, event_time: Date.now() })
    const payload = await signIdToken({ iss: issuer, aud: servicesId, iat: now(), jti: randomBytes(16).toString('hex'), events, ...claims })
    return { payload }
  }

  function idTokenClaims(grant: Grant, extra: { nonce?: string; native?: boolean; hashes?: Record<string, string> } = {}) {
    const { account } = grant
    const iat = now()
    const claims: Record<string, unknown> = { iss: issuer, aud: grant.clientId, exp: iat + ID_TOKEN_TTL, iat, sub: account.sub, ...extra.hashes }
    if (extra.nonce !== undefined) claims.nonce = extra.nonce
    Object.assign(claims, { auth_time: grant.authTime, nonce_supported: booleanClaim(account, true) })
    if (grant.emailShared) Object.assign(claims, emailClaims(account))
    if (extra.native) claims.real_user_status = account.realUserStatus ?? 2
    return claims
  }

  /** Records the user's consent; `first` when this is their first authorization of the client (or the first since a revocation). */
  function consent(clientId: string, account: AppleAccount, scopes: Scope[]): { first: boolean; emailShared: boolean } {
    const key = consentKey(clientId, account.sub)
    const existing = consents.get(key)
    if (existing) return { first: false, emailShared: existing.emailShared }
    const given = { emailShared: scopes.includes('email') && account.email !== undefined }
    consents.set(key, given)
    return { first: true, ...given }
  }

  function issueCode(code: IssuedCode): string {
    const value = `c${randomToken(24)}.0.${randomToken(6)}`
    codes.set(value, code)
    return value
  }

  // --- client authentication -----------------------------------------------

  /** The client_secret's iat, for the record, whenever it parses as a JWT at all. */
  function secretIat(secret: string | null): number | undefined {
    try {
      const iat = secret ? jose.decodeJwt(secret).iat : undefined
      return typeof iat === 'number' ? iat : undefined
    } catch {
      return undefined
    }
  }

  /** Apple's checks of the client_secret JWT; any failure is the same invalid_client. */
  async function clientAuthenticated(clientId: string, secret: string | null): Promise<boolean> {
    if (!secret || !knownClient(clientId)) return false
    try {
      const { payload, protectedHeader } = await jose.jwtVerify(secret, developerKey, {
        algorithms: ['ES256'],
        issuer: teamId,
        audience: APPLE_AUDIENCE,
        subject: clientId,
        requiredClaims: ['iat', 'exp'],
      })
      if (protectedHeader.kid !== keyId) return false
      const iat = payload.iat!
      return iat <= now() + IAT_SKEW && payload.exp! - iat <= MAX_SECRET_LIFETIME
    } catch {
      return false
    }
  }

  // --- endpoints --------------------------------------------------------------

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer)
    const method = req.method ?? 'GET'
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        return method === 'GET' ? sendJson(res, 200, discoveryDocument()) : sendJson(res, 405, { error: 'invalid_request' })
      case '/auth/keys': {
        const fault = takeFault('keys')
        if (fault) return applyFault(res, fault)
        return sendJson(res, 200, { keys: [publicJwk] })
      }
      case '/auth/authorize':
        return method === 'GET' ? authorizeEndpoint(url, res) : errorPage(res, 405, 'invalid_request', 'GET only')
      case DECISION_PATH:
        return decisionEndpoint(req, res)
      case '/auth/token':
        return tokenEndpoint(req, res)
      case '/auth/revoke':
        return revokeEndpoint(req, res)
      default:
        return errorPage(res, 404, 'not_found', `no such page: ${url.pathname}`)
    }
  }

  function discoveryDocument() {
    return {
      issuer,
      authorization_endpoint: `${issuer}/auth/authorize`,
      token_endpoint: `${issuer}/auth/token`,
      revocation_endpoint: `${issuer}/auth/revoke`,
      jwks_uri: `${issuer}/auth/keys`,
      response_types_supported: ['code', 'code id_token'],
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid', 'email', 'name'],
      token_endpoint_auth_methods_supported: ['client_secret_post'],
      code_challenge_methods_supported: ['S256'],
      claims_supported: ['aud', 'email', 'email_verified', 'exp', 'iat', 'is_private_email', 'iss', 'nonce', 'nonce_supported', 'real_user_status', 'sub'],
    }
  }

  function authorizeEndpoint(url: URL, res: ServerResponse): void {
    const params = url.searchParams
    const clientId = params.get('client_id') ?? ''
    if (clientId !== servicesId) return errorPage(res, 400, 'invalid_client', 'the client_id is not a registered Services ID')
    const redirectUri = params.get('redirect_uri') ?? ''
    if (!redirectUris.includes(redirectUri)) return errorPage(res, 400, 'invalid_request', 'Invalid redirect_uri: not registered for this Services ID')
    const responseType = (params.get('response_type') ?? '').split(' ').filter(Boolean).sort().join(' ')
    if (responseType !== 'code' && responseType !== 'code id_token') return errorPage(res, 400, 'unsupported_response_type', 'response_type must be code or code id_token')
    const idToken = responseType === 'code id_token'
    // `openid` is implied: accepted and ignored, as Apple does.
    const words = (params.get('scope') ?? '').split(/[\s+]+/).filter((word) => word && word !== 'openid')
    if (words.some((word) => word !== 'name' && word !== 'email')) return errorPage(res, 400, 'invalid_scope', 'scope may hold name and email only')
    const scopes = (['name', 'email'] as const).filter((scope) => words.includes(scope))
    const mode = params.get('response_mode') ?? (idToken ? 'fragment' : 'query')
    if (mode !== 'query' && mode !== 'fragment' && mode !== 'form_post') return errorPage(res, 400, 'invalid_request', 'response_mode must be query, fragment or form_post')
    if (scopes.length > 0 && mode !== 'form_post') return errorPage(res, 400, 'invalid_request', 'response_mode must be form_post when name or email scope is requested')
    if (idToken && mode === 'query') return errorPage(res, 400, 'invalid_request', 'an id_token cannot travel in the query')
    const challenge = params.get('code_challenge') ?? undefined
    const challengeMethod = params.get('code_challenge_method') ?? undefined
    if (challengeMethod !== undefined && challengeMethod !== 'S256') return errorPage(res, 400, 'invalid_request', 'code_challenge_method must be S256')
    if ((challenge === undefined) !== (challengeMethod === undefined)) return errorPage(res, 400, 'invalid_request', 'code_challenge and code_challenge_method go together')
    if (challenge !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(challenge)) return errorPage(res, 400, 'invalid_request', 'code_challenge is not an S256 challenge')

    const entry: PendingAuthorization = { clientId, redirectUri, idToken, responseMode: mode, scopes, expiresAt: Date.now() + PENDING_TTL_MS }
    const state = params.get('state')
    if (state !== null) entry.state = state
    const nonce = params.get('nonce')
    if (nonce !== null) entry.nonce = nonce
    if (challenge !== undefined) entry.codeChallenge = challenge
    const requestId = randomToken(16)
    pending.set(requestId, entry)
    send(res, 200, signInPage(requestId, entry), { 'content-type': HTML_TYPE })
  }

  async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) return undefined
    return new URLSearchParams(await readRequestBody(req))
  }

  /** The sign-in page's Continue or Cancel: answers with Apple's callback for the client. */
  async function decisionEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return errorPage(res, 405, 'invalid_request', 'POST the sign-in form')
    const form = await readForm(req)
    const requestId = form?.get('request') ?? ''
    const entry = pending.get(requestId)
    pending.delete(requestId)
    if (!form || !entry || entry.expiresAt <= Date.now()) return errorPage(res, 400, 'invalid_request', 'this sign-in request is unknown or expired; start again')

    const fields: Record<string, string> = {}
    if (form.get('action') !== 'continue') {
      fields.error = 'user_cancelled_authorize'
    } else {
      const account = accountFromForm(form)
      try {
        checkAccount(account)
      } catch (error) {
        return errorPage(res, 400, 'invalid_request', error instanceof Error ? error.message : String(error))
      }
      const { first, emailShared } = consent(entry.clientId, account, entry.scopes)
      const grant: Grant = { clientId: entry.clientId, account, emailShared, authTime: now() }
      const code: IssuedCode = { ...grant, redirectUri: entry.redirectUri, expiresAt: Date.now() + CODE_TTL_MS }
      if (entry.nonce !== undefined) code.nonce = entry.nonce
      if (entry.codeChallenge !== undefined) code.codeChallenge = entry.codeChallenge
      fields.code = issueCode(code)
      if (entry.idToken) fields.id_token = await signIdToken(idTokenClaims(grant, { nonce: entry.nonce, hashes: { c_hash: halfHash(fields.code) } }))
      // The name is never in an ID token: this field, on the first authorization, is the only chance to get it.
      if (first && entry.scopes.length > 0) fields.user = userField(account, entry.scopes)
    }
    if (entry.state !== undefined) fields.state = entry.state

    if (entry.responseMode === 'form_post') return send(res, 200, formPostPage(entry.redirectUri, fields), { 'content-type': HTML_TYPE })
    const redirect = new URL(entry.redirectUri)
    const parameters = new URLSearchParams(fields)
    if (entry.responseMode === 'fragment') redirect.hash = parameters.toString()
    else for (const [name, value] of parameters) redirect.searchParams.set(name, value)
    res.writeHead(302, { location: redirect.href, 'cache-control': 'no-store' })
    res.end()
  }

  async function tokenEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'invalid_request' })
    const form = await readForm(req)
    const record: AppleTokenRequestRecord = { clientId: form?.get('client_id') ?? '', grantType: form?.get('grant_type') ?? '', outcome: 'ok' }
    const iat = secretIat(form?.get('client_secret') ?? null)
    if (iat !== undefined) record.clientSecretIat = iat
    tokenLog.push(record)
    const fault = takeFault('token')
    if (fault) {
      record.outcome = faultOutcome(fault)
      return applyFault(res, fault)
    }
    const answer = form ? await tokenAnswer(form) : oauthError('invalid_request')
    record.outcome = typeof answer.body.error === 'string' ? answer.body.error : 'ok'
    sendJson(res, answer.status, answer.body)
  }

  type Answer = { status: number; body: Record<string, unknown> }
  const oauthError = (error: string): Answer => ({ status: 400, body: { error } })

  async function tokenAnswer(form: URLSearchParams): Promise<Answer> {
    const clientId = form.get('client_id') ?? ''
    // Client authentication comes first: a bad secret does not spend the code.
    if (!(await clientAuthenticated(clientId, form.get('client_secret')))) return oauthError('invalid_client')
    const grantType = form.get('grant_type')
    if (grantType === 'authorization_code') return codeGrant(clientId, form)
    if (grantType === 'refresh_token') return refreshGrant(clientId, form)
    return oauthError('unsupported_grant_type')
  }

  async function codeGrant(clientId: string, form: URLSearchParams): Promise<Answer> {
    const value = form.get('code')
    if (!value) return oauthError('invalid_request')
    const code = codes.get(value)
    // Single use: whatever happens next, this code is spent.
    codes.delete(value)
    if (!code || code.expiresAt <= Date.now() || code.clientId !== clientId) return oauthError('invalid_grant')
    if (code.redirectUri !== undefined && form.get('redirect_uri') !== code.redirectUri) return oauthError('invalid_grant')
    const verifier = form.get('code_verifier')
    if (code.codeChallenge === undefined ? verifier !== null : !verifierMatches(verifier, code.codeChallenge)) return oauthError('invalid_grant')

    const grant: Grant = { clientId: code.clientId, account: code.account, emailShared: code.emailShared, authTime: code.authTime }
    const accessToken = `a${randomToken(24)}.0.${randomToken(6)}`
    const refreshToken = `r${randomToken(24)}.0.${randomToken(6)}`
    accessTokens.set(accessToken, { clientId, sub: grant.account.sub })
    refreshTokens.set(refreshToken, grant)
    const idToken = await signIdToken(idTokenClaims(grant, { nonce: code.nonce, hashes: { at_hash: halfHash(accessToken) } }), forgeNext ? strangersKey : privateKey)
    forgeNext = false
    return {
      status: 200,
      body: { access_token: accessToken, token_type: 'Bearer', expires_in: ACCESS_TOKEN_TTL, refresh_token: refreshToken, id_token: idToken },
    }
  }

  function verifierMatches(verifier: string | null, challenge: string): boolean {
    if (verifier === null || !/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return false
    return createHash('sha256').update(verifier).digest('base64url') === challenge
  }

  /** Apple answers a refresh with a new access token and ID token; the refresh token stays the same. */
  async function refreshGrant(clientId: string, form: URLSearchParams): Promise<Answer> {
    const grant = refreshTokens.get(form.get('refresh_token') ?? '')
    if (!grant || grant.clientId !== clientId) return oauthError('invalid_grant')
    const accessToken = `a${randomToken(24)}.0.${randomToken(6)}`
    accessTokens.set(accessToken, { clientId, sub: grant.account.sub })
    const idToken = await signIdToken(idTokenClaims(grant, { hashes: { at_hash: halfHash(accessToken) } }))
    return { status: 200, body: { access_token: accessToken, token_type: 'Bearer', expires_in: ACCESS_TOKEN_TTL, id_token: idToken } }
  }

  async function revokeEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'invalid_request' })
    const form = await readForm(req)
    const fault = takeFault('revoke')
    if (fault) return applyFault(res, fault)
    if (!form) return sendJson(res, 400, { error: 'invalid_request' })
    const clientId = form.get('client_id') ?? ''
    if (!(await clientAuthenticated(clientId, form.get('client_secret')))) return sendJson(res, 400, { error: 'invalid_client' })
    const value = form.get('token')
    if (!value) return sendJson(res, 400, { error: 'invalid_request' })
    const revocation: AppleRevocation = { clientId, token: value }
    const hint = form.get('token_type_hint')
    if (hint !== null) revocation.tokenTypeHint = hint
    revocationLog.push(revocation)
    // RFC 7009: an unknown token (or another client's) is not an error, and nothing happens.
    const issued = refreshTokens.get(value) ?? accessTokens.get(value)
    if (issued?.clientId === clientId) endAuthorization(clientId, 'account' in issued ? issued.account.sub : issued.sub)
    send(res, 200, '', { 'content-type': 'text/plain' })
  }

  /** Revoking ends the user's authorization of the app: every token goes, and the next sign-in is a first one again. */
  function endAuthorization(clientId: string, sub: string): void {
    for (const [value, grant] of refreshTokens) if (grant.clientId === clientId && grant.account.sub === sub) refreshTokens.delete(value)
    for (const [value, issued] of accessTokens) if (issued.clientId === clientId && issued.sub === sub) accessTokens.delete(value)
    consents.delete(consentKey(clientId, sub))
  }

  // --- playing the user -------------------------------------------------------

  async function play(authorizationUrl: string | URL, account: AppleAccount | undefined): Promise<AppleFormPost> {
    const url = new URL(authorizationUrl)
    if (url.origin !== issuer) throw new Error(`apple emulator: authorization URL ${url.origin} is not this emulator (${issuer})`)
    const page = await fetch(url, { redirect: 'manual' })
    const html = await page.text()
    const requestId = /name="request" value="([^"]+)"/.exec(html)?.[1]
    if (page.status !== 200 || !requestId) {
      throw new Error(`apple emulator: HTTP ${page.status} at ${url.pathname}: ${html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300)}`)
    }
    const form = account ? decisionForm(unescapeHtml(requestId), account) : new URLSearchParams({ request: unescapeHtml(requestId), action: 'cancel' })
    const answer = await fetch(new URL(DECISION_PATH, issuer), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
      redirect: 'manual',
    })
    return callbackFromAnswer(answer.status, answer.headers.get('location'), await answer.text())
  }

  return {
    issuer,
    authorize: (authorizationUrl, account) => play(authorizationUrl, account),
    deny: (authorizationUrl) => play(authorizationUrl, undefined),
    async nativeSignIn(bundleId, account, native = {}) {
      if (!bundleIds.includes(bundleId)) throw new Error(`apple emulator: ${bundleId} is not a registered bundle id`)
      checkAccount(account)
      // An app asks for [.fullName, .email]; both come back on the first sign-in only.
      const { first, emailShared } = consent(bundleId, account, ['name', 'email'])
      const grant: Grant = { clientId: bundleId, account: { ...account }, emailShared, authTime: now() }
      const code: IssuedCode = { ...grant, expiresAt: Date.now() + CODE_TTL_MS }
      if (native.nonce !== undefined) code.nonce = native.nonce
      const authorizationCode = issueCode(code)
      const identityToken = await signIdToken(idTokenClaims(grant, { nonce: native.nonce, native: true, hashes: { c_hash: halfHash(authorizationCode) } }))
      const result: Awaited<ReturnType<AppleEmulator['nativeSignIn']>> = { identityToken, authorizationCode }
      if (first && account.name) {
        result.fullName = {}
        if (account.name.firstName !== undefined) result.fullName.givenName = account.name.firstName
        if (account.name.lastName !== undefined) result.fullName.familyName = account.name.lastName
      }
      if (first && account.email !== undefined) result.email = account.email
      return result
    },
    signIdToken,
    forgeNextIdToken() {
      forgeNext = true
    },
    notification,
    async notify(url, event) {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(await notification(event)) })
      return response.status
    },
    tokenRequests: () => tokenLog.map((record) => ({ ...record })),
    revocations: () => revocationLog.map((record) => ({ ...record })),
    fail(endpoint, fault) {
      faults.set(endpoint, fault)
    },
    stop: () => close(server),
  }
}
