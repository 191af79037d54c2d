// What an emulated provider's own HTTP server receives (Node's `http.server.request.start`
// diagnostics channel): what the provider saw, not what the gateway believes it sent, and
// whatever HTTP client the gateway uses. The user's own pages (the authorization endpoint and
// the emulator's sign-in form, which a test plays as the browser) are not the gateway's
// requests and are left out.

import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { IncomingMessage, Server } from 'node:http'
import type { Test } from 'tap'

/** The Google emulator's front channel: what the browser, not the gateway, asks for. */
const GOOGLE_BROWSER_PATHS = ['/o/oauth2/v2/auth', '/interaction/']

/** Counts the gateway's requests to the provider at `issuer` until the test ends: all of them, and token calls. */
export function countGatewayRequests(t: Pick<Test, 'teardown'>, issuer: string, browserPaths = GOOGLE_BROWSER_PATHS) {
  const port = Number(new URL(issuer).port)
  const seen = { all: 0, token: 0 }
  const onRequest = (message: unknown) => {
    const { request, server } = message as { request: IncomingMessage; server: Server }
    const address = server.address()
    if (typeof address !== 'object' || address?.port !== port) return
    if (browserPaths.some((path) => request.url?.startsWith(path))) return
    seen.all++
    if (request.method === 'POST' && request.url?.startsWith('/token')) seen.token++
  }
  subscribe('http.server.request.start', onRequest)
  t.teardown(() => unsubscribe('http.server.request.start', onRequest))
  return seen
}
