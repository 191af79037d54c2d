// Browser or app? A request with an `Origin` header is a browser: its origin must be
// allowed, and it gets the refresh token only as an HttpOnly cookie. A request without
// one (native app, server) gets it in the body. A cookie is never accepted without an
// allowed Origin: that is our CSRF defence for /auth/token and /auth/logout.

import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { OriginNotAllowed } from '../errors.js'
import type { Channel } from '../sessions/refresh-sessions.js'

export interface RefreshCookie {
  name: string
  secure: boolean
}

/** `__Secure-` needs Secure; Secure is dropped only for http://localhost in development. */
export function refreshCookieFor(config: Pick<Config, 'publicUrl' | 'production'>): RefreshCookie {
  const url = new URL(config.publicUrl)
  const insecureLocal = !config.production && url.protocol === 'http:' && url.hostname === 'localhost'
  return insecureLocal ? { name: 'refresh_token', secure: false } : { name: '__Secure-refresh_token', secure: true }
}

export class BrowserPolicy {
  private readonly origins: Set<string>

  constructor(
    config: Pick<Config, 'webOrigins'>,
    readonly cookie: RefreshCookie,
  ) {
    this.origins = new Set(config.webOrigins)
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
    const cookieToken = request.cookies[this.cookie.name]
    if (bodyToken === undefined && cookieToken !== undefined) {
      // A cookie travels by itself; only an allowed Origin shows the request is ours.
      const origin = request.headers.origin
      if (origin === undefined || !this.isAllowedOrigin(origin)) {
        throw new OriginNotAllowed('a cookie-authenticated request needs an allowed Origin')
      }
      return { token: cookieToken, channel: 'cookie' }
    }
    return { token: bodyToken, channel: this.channelOf(request) === 'cookie' ? 'cookie' : 'body' }
  }

  setRefreshCookie(reply: FastifyReply, token: string, maxAgeSeconds: number): void {
    reply.setCookie(this.cookie.name, token, { ...this.cookieAttributes(), maxAge: maxAgeSeconds })
  }

  clearRefreshCookie(reply: FastifyReply): void {
    reply.clearCookie(this.cookie.name, this.cookieAttributes())
  }

  private cookieAttributes() {
    return { path: '/auth', httpOnly: true, secure: this.cookie.secure, sameSite: 'strict' as const }
  }
}

/** A short client/device label for the session list: the User-Agent, trimmed. */
export function clientLabel(request: FastifyRequest): string {
  return (request.headers['user-agent'] ?? 'unknown client').slice(0, 200)
}
