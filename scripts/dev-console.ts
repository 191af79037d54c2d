// The emulator console of `npm run dev`: a loopback page whose two forms make the emulated
// Kakao send its unlink callback and the emulated Apple a server-to-server notification to
// the gateway, so a developer can watch the gateway react to a member leaving without
// hand-writing a KakaoAK header or signing a JWS. The emulators do the sending (their own
// admin key, their own signing key); the page shows the HTTP status the gateway answered.
// Development only: scripts/dev.ts starts it next to the emulators, nothing else does.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AppleNotificationType } from '../emulators/apple.js'
import { close, listen } from '../emulators/loopback-server.js'
import type { EmulatedProviders } from '../emulators/providers.js'
import { readRequestBody } from '../emulators/request-body.js'

export type ConsoleProvider = 'kakao' | 'apple'

export interface DevConsoleOptions {
  emulators: EmulatedProviders
  /** The gateway's PUBLIC_URL: the callbacks go to `{publicUrl}/webhooks/...`. */
  publicUrl: string
  port: number
  /** A loopback address; default 127.0.0.1. */
  host?: string
  /** The forms to offer (the emulated providers); default both. */
  providers?: readonly ConsoleProvider[]
}

export interface DevConsole {
  url: string
  close(): Promise<void>
}

export const KAKAO_REFERRER_TYPES = ['ACCOUNT_DELETE', 'FORCED_ACCOUNT_DELETE', 'UNLINK_FROM_APPS', 'UNLINK_FROM_ADMIN', 'INCOMPLETE_SIGN_UP'] as const
export const APPLE_NOTIFICATION_TYPES: readonly AppleNotificationType[] = ['consent-revoked', 'account-delete', 'email-disabled', 'email-enabled']

/**
 * The ids the emulators' sign-in pages suggest (emulators/kakao.ts consentPage,
 * emulators/apple.ts signInPage): the emulators keep no list of who signed in, so the
 * forms start with the id a developer most likely kept.
 */
export const SIGN_IN_PAGE_DEFAULTS = { kakaoMemberId: '1376016924429759228', appleSub: '001234.0123456789abcdef0123456789abcdef.1234' }

const HTML_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
}
const MAX_FORM_BYTES = 4 * 1024

/** A Kakao member number: a positive decimal of at most 19 digits. */
const isKakaoMemberId = (value: string) => /^[1-9][0-9]{0,18}$/.test(value)
/** An Apple `sub`: visible ASCII, no spaces, at most 255 characters (what the emulator's sign-in accepts). */
const isAppleSub = (value: string) => /^[\x21-\x7e]{1,255}$/.test(value)
const isOneOf = <T extends string>(list: readonly T[], value: string): value is T => (list as readonly string[]).includes(value)

const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** What the request was about and how it went, for the line above the forms. */
interface Result {
  ok: boolean
  message: string
}

/** The values the forms show: the defaults, or what was just sent. */
interface FormValues {
  memberId: string
  referrerType: string
  sub: string
  type: string
}

const DEFAULT_VALUES: FormValues = {
  memberId: SIGN_IN_PAGE_DEFAULTS.kakaoMemberId,
  referrerType: 'UNLINK_FROM_APPS',
  sub: SIGN_IN_PAGE_DEFAULTS.appleSub,
  type: 'consent-revoked',
}

export async function startDevConsole(options: DevConsoleOptions): Promise<DevConsole> {
  const host = options.host ?? '127.0.0.1'
  if (!isLoopbackHost(host)) throw new Error(`dev console: ${host} is not a loopback address; the console listens on loopback only`)
  const publicUrl = options.publicUrl.replace(/\/+$/, '')
  const providers = options.providers ?? ['kakao', 'apple']
  const { kakao, apple } = options.emulators
  const page = (values: FormValues, result?: Result) => consolePage({ providers, publicUrl, values, result })
  const refused = (values: FormValues, message: string) => ({ status: 400, page: page(values, { ok: false, message: `Not sent: ${message}` }) })

  async function sendKakaoUnlink(form: URLSearchParams): Promise<{ status: number; page: string }> {
    const memberId = field(form, 'member_id')
    const referrerType = field(form, 'referrer_type')
    const values = { ...DEFAULT_VALUES, memberId: memberId ?? '', referrerType: referrerType ?? '' }
    if (memberId === undefined || !isKakaoMemberId(memberId)) return refused(values, 'The member id must be a Kakao member number: digits only, no leading zero, at most 19.')
    if (referrerType === undefined || !isOneOf(KAKAO_REFERRER_TYPES, referrerType)) return refused(values, `referrer_type must be one of ${KAKAO_REFERRER_TYPES.join(', ')}.`)
    const url = `${publicUrl}/webhooks/kakao/unlink`
    const what = `Kakao unlink callback for member ${memberId} (${referrerType})`
    const answer = await gatewayAnswer(what, url, () => kakao.sendUnlinkCallback(url, { id: memberId, referrerType }), KAKAO_HINTS)
    return { status: answer.status, page: page(values, answer.result) }
  }

  async function sendAppleNotification(form: URLSearchParams): Promise<{ status: number; page: string }> {
    const sub = field(form, 'sub')
    const type = field(form, 'type')
    const values = { ...DEFAULT_VALUES, sub: sub ?? '', type: type ?? '' }
    if (sub === undefined || !isAppleSub(sub)) return refused(values, 'The sub must be 1 to 255 visible ASCII characters, without spaces.')
    if (type === undefined || !isOneOf(APPLE_NOTIFICATION_TYPES, type)) return refused(values, `type must be one of ${APPLE_NOTIFICATION_TYPES.join(', ')}.`)
    const url = `${publicUrl}/webhooks/apple`
    const what = `Apple ${type} notification for ${sub}`
    const answer = await gatewayAnswer(what, url, () => apple.notify(url, { type, sub }), APPLE_HINTS)
    return { status: answer.status, page: page(values, answer.result) }
  }

  const actions = new Map<string, { provider: ConsoleProvider; run: (form: URLSearchParams) => Promise<{ status: number; page: string }> }>([
    ['/kakao/unlink', { provider: 'kakao', run: sendKakaoUnlink }],
    ['/apple/notify', { provider: 'apple', run: sendAppleNotification }],
  ])

  async function handle(req: IncomingMessage, res: ServerResponse, ownOrigins: string[]): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://console').pathname
    // DNS rebinding and cross-site form posts: only this console's own pages get answers.
    if (!ownOrigins.some((origin) => `http://${req.headers.host}` === origin)) return reply(res, 421, plainPage('Misdirected request', 'Open the console at its loopback address.'))
    if (req.method === 'POST' && req.headers.origin !== undefined && !ownOrigins.includes(req.headers.origin)) {
      return reply(res, 403, plainPage('Forbidden', 'The console only accepts its own forms.'))
    }
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) return reply(res, 200, page(DEFAULT_VALUES))
    const action = actions.get(path)
    if (!action || !providers.includes(action.provider)) return reply(res, 404, plainPage('Not found', 'The console has / and the forms it shows there.'))
    if (req.method !== 'POST') return reply(res, 405, plainPage('Method not allowed', 'Use the form on /.'), { allow: 'POST' })
    const form = await readForm(req)
    if (!form) return reply(res, 400, page(DEFAULT_VALUES, { ok: false, message: 'Not sent: post the form (application/x-www-form-urlencoded, at most 4 KiB).' }))
    const answer = await action.run(form)
    reply(res, answer.status, answer.page)
  }

  let ownOrigins: string[] = []
  const server = createServer((req, res) => {
    handle(req, res, ownOrigins).catch((error: unknown) => {
      console.error('dev console:', error)
      reply(res, 500, plainPage('Console error', 'The console failed; see its terminal.'))
    })
  })
  const port = await listen(server, options.port, host)
  const address = host.includes(':') ? `[${host}]` : host
  ownOrigins = [`http://${address}:${port}`, `http://localhost:${port}`]
  return { url: `http://${address}:${port}/`, close: () => close(server) }
}

/** What a status means for each callback, beyond the number. */
const KAKAO_HINTS: Record<number, string> = {
  200: 'Heard. A member the gateway does not know gets 200 too; check whether the user is gone.',
  400: 'The gateway refused the fields: is KAKAO_APP_IDS the emulator\'s app id?',
  401: 'The gateway refused the admin key: is KAKAO_ADMIN_KEY the emulator\'s?',
  503: 'The gateway\'s storage is down; Kakao would try again.',
}
const APPLE_HINTS: Record<number, string> = {
  200: 'Heard. A sub the gateway does not know gets 200 too; check whether the user changed.',
  400: 'The gateway refused the notification: is APPLE_ISSUER the emulator, APPLE_CLIENT_ID its Services ID?',
  503: 'The gateway\'s storage is down; Apple would try again.',
}

/**
 * Runs `send` and says what the gateway answered (the console's page then is a 200, whatever
 * the gateway's status), or that it could not be reached (a 502).
 */
async function gatewayAnswer(what: string, url: string, send: () => Promise<number>, hints: Record<number, string>): Promise<{ status: number; result: Result }> {
  try {
    const status = await send()
    const hint = hints[status] ?? ''
    return { status: 200, result: { ok: status === 200, message: `${what}: the gateway answered HTTP ${status}. ${hint}`.trim() } }
  } catch (error) {
    const reason = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error)
    return { status: 502, result: { ok: false, message: `${what}: ${url} could not be reached (${reason}). Is the gateway running?` } }
  }
}

/** The one value of a form field, trimmed; undefined when missing or repeated. */
function field(form: URLSearchParams, name: string): string | undefined {
  const values = form.getAll(name)
  return values.length === 1 ? values[0]!.trim() : undefined
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) return undefined
  try {
    return new URLSearchParams(await readRequestBody(req, MAX_FORM_BYTES))
  } catch {
    return undefined
  }
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

function reply(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, { ...HTML_HEADERS, ...headers })
  res.end(html)
}

// --- the page --------------------------------------------------------------

const STYLE = 'body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}form{border:1px solid #ccc;padding:0 1em 1em;margin:1em 0}p.ok{color:#064}p.error{color:#a00}code{background:#eee}'

function plainPage(title: string, message: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>`
}

function optionList(list: readonly string[], selected: string): string {
  return list.map((value) => `<option value="${escapeHtml(value)}"${value === selected ? ' selected' : ''}>${escapeHtml(value)}</option>`).join('')
}

function kakaoForm(publicUrl: string, values: FormValues): string {
  return `<form method="post" action="/kakao/unlink">
<h2>Kakao: the member unlinks the app</h2>
<p>The emulated Kakao calls <code>${escapeHtml(publicUrl)}/webhooks/kakao/unlink</code> with its admin key.</p>
<p><label>member id (the one typed on the emulated Kakao login page)<br><input name="member_id" required pattern="[1-9][0-9]{0,18}" maxlength="19" value="${escapeHtml(values.memberId)}"></label></p>
<p><label>referrer_type<br><select name="referrer_type">${optionList(KAKAO_REFERRER_TYPES, values.referrerType)}</select></label></p>
<p><button type="submit">Send the unlink callback</button></p>
</form>`
}

function appleForm(publicUrl: string, values: FormValues): string {
  return `<form method="post" action="/apple/notify">
<h2>Apple: server-to-server notification</h2>
<p>The emulated Apple signs the notification and posts it to <code>${escapeHtml(publicUrl)}/webhooks/apple</code>.</p>
<p><label>sub (the one typed on the emulated Apple sign-in page)<br><input name="sub" required pattern="[!-~]{1,255}" maxlength="255" size="50" value="${escapeHtml(values.sub)}"></label></p>
<p><label>type<br><select name="type">${optionList(APPLE_NOTIFICATION_TYPES, values.type)}</select></label></p>
<p><button type="submit">Send the notification</button></p>
</form>`
}

function consolePage(view: { providers: readonly ConsoleProvider[]; publicUrl: string; values: FormValues; result?: Result }): string {
  const result = view.result ? `<p class="${view.result.ok ? 'ok' : 'error'}" id="result">${escapeHtml(view.result.message)}</p>` : ''
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Emulator console</title><style>${STYLE}</style></head>
<body>
<h1>Emulator console</h1>
<p>Make the emulated providers call the gateway at <code>${escapeHtml(view.publicUrl)}</code> as the real ones do when a member leaves. The emulators keep no list of who signed in: use the id you typed on their sign-in page.</p>
${result}
${view.providers.includes('kakao') ? kakaoForm(view.publicUrl, view.values) : ''}
${view.providers.includes('apple') ? appleForm(view.publicUrl, view.values) : ''}
</body></html>`
}
