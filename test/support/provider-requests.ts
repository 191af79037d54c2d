// What an emulated provider's own HTTP server receives (Node's `http.server.request.start`
// diagnostics channel): what the provider saw, not what the gateway believes it sent, and
// whatever HTTP client the gateway uses.

import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { IncomingMessage, Server } from 'node:http'
import type { Test } from 'tap'

/** The Google emulator's front channel: the pages a test asks for as the user's browser, never the gateway. */
const GOOGLE_BROWSER_PATHS = ['/o/oauth2/v2/auth', '/interaction/']

/**
 * Counts the requests the Google emulator at `issuer` receives until the test ends: `all` of
 * them, `token` calls, and `fromGateway`: all but the browser's pages, for a test that plays
 * the user while it counts.
 */
export function countGoogleRequests(t: Pick<Test, 'teardown'>, issuer: string) {
  const port = Number(new URL(issuer).port)
  const seen = { all: 0, token: 0, fromGateway: 0 }
  const onRequest = (message: unknown) => {
    const { request, server } = message as { request: IncomingMessage; server: Server }
    const address = server.address()
    if (typeof address !== 'object' || address?.port !== port) return
    seen.all++
    if (request.method === 'POST' && request.url?.startsWith('/token')) seen.token++
    if (!GOOGLE_BROWSER_PATHS.some((path) => request.url?.startsWith(path))) seen.fromGateway++
  }
  subscribe('http.server.request.start', onRequest)
  t.teardown(() => unsubscribe('http.server.request.start', onRequest))
  return seen
}
