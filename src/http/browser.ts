// Browser or app? A request with an `Origin` header is a browser: its origin must be
// allowed, and it gets the refresh token only as an HttpOnly cookie. A request without
// one (native app, server) gets it in the body. A cookie is never accepted without an
// allowed Origin: that is our CSRF defence for /auth/token and /auth/logout.
// A cookie of ours that arrives twice is refused: a sibling host or a plain-http page can
// plant a second one (cookie tossing), and "the first one wins" would let it choose.

import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { InvalidRequest, OriginNotAllowed } from '../common/errors.js'
import type { RequestOrigin } from '../audit/audit-log.js'
import type { Channel, SessionClient } from '../sessions/refresh-sessions.js'

export interface RefreshCookie {
  name: string
  secure: boolean
}

/** `__Secure-` needs Secure; Secure is dropped only for http://localhost in development. */
export function refreshCookieFor(config: Pick<Config, 'publicUrl' | 'production'>): RefreshCookie {
  const secure = cookiesAreSecure(config)
  return { name: cookieName('refresh_token', secure), secure }
}

function cookiesAreSecure(config: Pick<Config, 'publicUrl' | 'production'>): boolean {
  const url = new URL(config.publicUrl)
  return config.production || url.protocol !== 'http:' || url.hostname !== 'localhost'
}

function cookieName(base: string, secure: boolean): string {
  return secure ? `__Secure-${base}` : base
}

/**
 * The short-lived cookies of the redirect flow. The binding cookie must come back on the
 * provider's top-level redirect, so it is SameSite=Lax; a provider that POSTs its callback
 * (Apple's form_post) makes that a cross-site POST, which only a SameSite=None cookie
 * survives, and None requires Secure (browsers accept Secure on http://localhost too).
 * The pending signup ticket is only ever sent to POST /auth/signup, so it is Strict. None
 * is readable by scripts.
 */
const FLOW_COOKIES = {
  loginBinding: { base: 'login_binding', path: '/auth/callback', sameSite: 'lax' },
  formPostBinding: { base: 'form_post_binding', path: '/auth/callback', sameSite: 'none' },
  signupTicket: { base: 'signup_ticket', path: '/auth/signup', sameSite: 'strict' },
} as const

export type FlowCookie = keyof typeof FLOW_COOKIES

export class BrowserPolicy {
  private readonly origins: Set<string>

  readonly cookie: RefreshCookie

  constructor(config: Pick<Config, 'webOrigins' | 'publicUrl' | 'production'>) {
    this.origins = new Set(config.webOrigins)
    this.cookie = refreshCookieFor(config)
  }

  isAllowedOrigin(origin: string): boolean {
    return this.origins.has(origin)
  }

  /** The channel of this request; throws for a browser request from an unknown origin. */
  channelOf(request: FastifyRequest): Channel {
    const origin = request.headers.origin
    if (origin === undefined) return 'body'
    if (!this.isAllowedOrigin(origin)) throw new OriginNotAllowed('this origin may not call the gateway')
    return 'cookie'
  }

  /** The refresh token of a request: the cookie for browsers, the body otherwise. */
  refreshTokenOf(request: FastifyRequest, bodyToken: string | undefined): { token?: string; channel: Channel } {
    const cookieToken = singleCookie(request, this.cookie.name)
    if (bodyToken === undefined && cookieToken !== undefined) {
      this.requireOriginForCookie(request)
      return { token: cookieToken, channel: 'cookie' }
    }
    return { token: bodyToken, channel: this.channelOf(request) }
  }

  /** Whether the browser holds a refresh cookie: whether a refresh is worth trying at all. */
  holdsRefreshCookie(request: FastifyRequest): boolean {
    return request.cookies[this.cookie.name] !== undefined
  }

  /** A cookie travels by itself: only an allowed Origin shows the request is the app's (CSRF). */
  requireOriginForCookie(request: FastifyRequest): void {
    const origin = request.headers.origin
    if (origin === undefined || !this.isAllowedOrigin(origin)) {
      throw new OriginNotAllowed('a cookie-authenticated request needs an allowed Origin')
    }
  }

  setRefreshCookie(reply: FastifyReply, token: string, maxAgeSeconds: number): void {
    reply.setCookie(this.cookie.name, token, { ...this.refreshCookieAttributes(), maxAge: maxAgeSeconds })
  }

  clearRefreshCookie(reply: FastifyReply): void {
    reply.clearCookie(this.cookie.name, this.refreshCookieAttributes())
  }

  /**
   * A browser's logout: expires the refresh cookie and has the browser drop every cookie of
   * the site (Clear-Site-Data), which also removes copies planted with a Domain attribute
   * that our own expiry cannot name. Only for an allowed origin (see isAllowedBrowser):
   * another site must not be able to wipe a user's cookies.
   */
  forgetBrowserSession(reply: FastifyReply): void {
    this.clearRefreshCookie(reply)
    reply.header('clear-site-data', '"cookies"')
  }

  flowCookieOf(request: FastifyRequest, cookie: FlowCookie): string | undefined {
    return singleCookie(request, cookieName(FLOW_COOKIES[cookie].base, this.cookie.secure))
  }

  /** A request from a browser on an allowed origin. */
  isAllowedBrowser(request: FastifyRequest): boolean {
    const origin = request.headers.origin
    return origin !== undefined && this.isAllowedOrigin(origin)
  }

  setFlowCookie(reply: FastifyReply, cookie: FlowCookie, value: string, maxAgeSeconds: number): void {
    reply.setCookie(cookieName(FLOW_COOKIES[cookie].base, this.cookie.secure), value, { ...this.flowCookieAttributes(cookie), maxAge: maxAgeSeconds })
  }

  /** Sets the cookie that binds a started redirect flow to this browser (RFC 9700 §4.7). */
  bindFlowToBrowser(reply: FastifyReply, started: { browserBinding: string; expiresIn: number; formPost: boolean }): void {
    this.setFlowCookie(reply, started.formPost ? 'formPostBinding' : 'loginBinding', started.browserBinding, started.expiresIn)
  }

  clearFlowCookie(reply: FastifyReply, cookie: FlowCookie): void {
    reply.clearCookie(cookieName(FLOW_COOKIES[cookie].base, this.cookie.secure), this.flowCookieAttributes(cookie))
  }

  private refreshCookieAttributes() {
    return { path: '/auth', httpOnly: true, secure: this.cookie.secure, sameSite: 'strict' as const }
  }

  private flowCookieAttributes(cookie: FlowCookie) {
    const { path, sameSite } = FLOW_COOKIES[cookie]
    return { path, sameSite, httpOnly: true, secure: this.cookie.secure || sameSite === 'none' }
  }
}

/**
 * The value of the cookie `name`, read from the raw Cookie header as well: @fastify/cookie
 * keeps only the first of several cookies of one name, which would hide the second.
 */
function singleCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie
  if (header !== undefined && cookieCount(header, name) > 1) {
    throw new InvalidRequest(`the ${name} cookie arrived more than once; clear this site's cookies and log in again`)
  }
  return request.cookies[name]
}

/** How many `name=value` pairs of this name a Cookie header has, split as the cookie package splits it. */
function cookieCount(header: string, name: string): number {
  let count = 0
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=')
    if (equals !== -1 && pair.slice(0, equals).replace(/^[ \t]+|[ \t]+$/g, '') === name) count += 1
  }
  return count
}

/** Where a request came from, for the audit trail. */
export function originOf(request: FastifyRequest): RequestOrigin {
  return { ip: request.ip, userAgent: request.headers['user-agent'] }
}

/** The client a session is started or used from: its channel, a device label (the User-Agent), its address. */
export function clientOf(request: FastifyRequest, channel: Channel): SessionClient {
  return { channel, label: (request.headers['user-agent'] ?? 'unknown client').slice(0, 200), ip: request.ip }
}
