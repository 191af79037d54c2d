// HTTP to providers, shared by every adapter: responses are read whole inside the call (so
// the call's timeout also covers a body that trickles in) and refused past a size no real
// provider answer approaches (oauth4webapi's response checks). Every call an adapter makes
// through its ProviderHttp is also timed and its error code read, for the metrics.

import { performance } from 'node:perf_hooks'
import type * as oidc from 'openid-client'
import { request, type Dispatcher } from 'undici'
import { ProviderError } from '../src/common/errors.js'

/** Token, profile and key-set answers are a few kilobytes; anything this large is not the provider talking. */
export const MAX_PROVIDER_RESPONSE_BYTES = 64 * 1024

export class OversizedResponse extends ProviderError {
  constructor(url: string) {
    const where = new URL(url)
    super('the provider sent an oversized response', {
      detail: `${where.origin}${where.pathname} answered more than ${MAX_PROVIDER_RESPONSE_BYTES} bytes`,
    })
  }
}

/**
 * A fetch for openid-client (`customFetch`), jose's key sets and our own provider calls,
 * made with undici's `request` rather than the global fetch: a provider call is a small
 * request and a small answer, read whole, and fetch's web streams cost more CPU and
 * latency than the call itself (measured on loopback: 340–390 µs per call against 130–150).
 * Redirects are never followed and nothing is decompressed (no Accept-Encoding is sent):
 * the answer is exactly what the provider's endpoint said.
 */
export const boundedFetch: oidc.CustomFetch = async (url, options) => (await readBounded(url, options)).response

const BODYLESS_STATUSES = new Set([204, 205, 304])

/** The answer, read whole, and its body's bytes (empty when it has none). */
async function readBounded(url: string, options: oidc.CustomFetchOptions): Promise<{ response: Response; body: Buffer }> {
  const headers = Object.fromEntries(new Headers(options.headers as ConstructorParameters<typeof Headers>[0]))
  let payload = options.body as string | URLSearchParams | Uint8Array | undefined
  if (payload instanceof URLSearchParams) {
    // As fetch sends a URLSearchParams body.
    headers['content-type'] ??= 'application/x-www-form-urlencoded;charset=UTF-8'
    payload = payload.toString()
  }
  const answer = await request(url, { method: options.method as Dispatcher.HttpMethod, headers, body: payload, signal: options.signal })
  if (Number(answer.headers['content-length']) > MAX_PROVIDER_RESPONSE_BYTES) {
    answer.body.destroy()
    throw new OversizedResponse(url)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of answer.body as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > MAX_PROVIDER_RESPONSE_BYTES) {
      answer.body.destroy()
      throw new OversizedResponse(url)
    }
    chunks.push(chunk)
  }
  const status = answer.statusCode
  // The Response below cannot carry a status outside 200–599; no provider endpoint answers with one.
  if (status < 200 || status > 599) throw new ProviderError('the provider answered with an unusable HTTP status', { detail: `${new URL(url).pathname} answered HTTP ${status}` })
  const bodyless = BODYLESS_STATUSES.has(status)
  const body = bodyless ? Buffer.alloc(0) : Buffer.concat(chunks, size)
  const responseHeaders = new Headers()
  for (const [name, value] of Object.entries(answer.headers)) {
    for (const one of Array.isArray(value) ? value : [value]) if (one !== undefined) responseHeaders.append(name, one)
  }
  return { response: new Response(bodyless ? null : body, { status, headers: responseHeaders }), body }
}

/** The first error of `type` in a cause chain: openid-client wraps what our fetch throws. */
export function causeOf<T>(error: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  for (let cause: unknown = error, depth = 0; cause !== undefined && cause !== null && depth < 8; depth++) {
    if (cause instanceof type) return cause
    if (!(cause instanceof Error)) return undefined
    cause = cause.cause
  }
  return undefined
}

/** True when a provider call ran out of time (ours or openid-client's timeout), anywhere in the cause chain. */
export function isTimeout(error: unknown): boolean {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++) {
    if (cause.name === 'TimeoutError' || (cause as { code?: unknown }).code === 'OAUTH_TIMEOUT') return true
  }
  return false
}

/** The messages (and codes) of an error's cause chain, for an operator's log line. */
export function describeCauses(error: unknown): string {
  const parts: string[] = []
  for (let cause: unknown = error; cause instanceof Error && parts.length < 4; cause = cause.cause) {
    const code = (cause as { code?: unknown }).code
    parts.push(`${cause.message}${typeof code === 'string' ? ` (${code})` : ''}`)
  }
  return parts.join(': ') || String(error)
}

// ---------------------------------------------------------------------------
// Calls as the metrics see them

/** Which endpoint of a provider a call went to: a label, never the URL itself. */
export type ProviderEndpoint = 'discovery' | 'token' | 'userinfo' | 'token_info' | 'jwks' | 'revocation' | 'unlink' | 'other'

/** One HTTP call to a provider. */
export interface ProviderCall {
  provider: string
  endpoint: ProviderEndpoint
  seconds: number
  /**
   * What went wrong, from a closed list: the provider's own error code (`KOE320`,
   * `invalid_grant`, kapi's `-401`, Naver's `024`), `other` for a code the adapter does not
   * list, `timeout`, `unreachable`, `oversized`, or `http_4xx`/`http_5xx` for an error answer
   * without a code. Undefined: the call succeeded.
   */
  error?: string
}

/** Told of every provider call (the metrics implement it). */
export interface ProviderCallObserver {
  providerCalled(call: ProviderCall): void
}

/**
 * OAuth error codes any provider may send: RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
 * OpenID Connect Core §3.1.2.6. A provider's own codes are added by its adapter.
 */
const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'unsupported_response_type',
  'invalid_scope',
  'access_denied',
  'server_error',
  'temporarily_unavailable',
  'invalid_token',
  'insufficient_scope',
  'interaction_required',
  'login_required',
  'consent_required',
]

/** The JSON members a provider names its error in, most specific first (Kakao's KOE code before its OAuth `error`). */
const ERROR_MEMBERS = ['error_code', 'error', 'code', 'resultcode']

/**
 * One adapter's HTTP to its provider: boundedFetch, timed per endpoint, with the provider's
 * error code read from the answer when an observer wants it. Error codes outside the OAuth
 * list and the adapter's own fold into `other`, so a provider cannot grow the label set.
 */
export class ProviderHttp {
  private readonly endpoints = new Map<string, ProviderEndpoint>()
  private readonly errorCodes: ReadonlySet<string>

  constructor(
    private readonly provider: string,
    private readonly observer: ProviderCallObserver | undefined,
    providerErrorCodes: readonly string[] = [],
  ) {
    this.errorCodes = new Set([...OAUTH_ERROR_CODES, ...providerErrorCodes])
  }

  /** Says which endpoint a URL is (its query does not matter); unnamed URLs count as `other`. */
  nameEndpoint(url: string | URL | undefined, endpoint: ProviderEndpoint): void {
    if (url !== undefined) this.endpoints.set(endpointKey(url), endpoint)
  }

  /** For openid-client's `customFetch`, jose's remote key sets and the adapter's own calls. */
  readonly fetch = async (url: string, options: RequestInit): Promise<Response> => {
    const observer = this.observer
    if (!observer) return boundedFetch(url, options as oidc.CustomFetchOptions)
    const started = performance.now()
    const call = (error: string | undefined) =>
      observer.providerCalled({ provider: this.provider, endpoint: this.endpointOf(url), seconds: (performance.now() - started) / 1000, error })
    let answer: Awaited<ReturnType<typeof readBounded>>
    try {
      answer = await readBounded(url, options as oidc.CustomFetchOptions)
    } catch (error) {
      call(failureOf(error))
      throw error
    }
    call(this.errorCodeOf(answer.response.status, answer.body))
    return answer.response
  }

  private endpointOf(url: string): ProviderEndpoint {
    const key = endpointKey(url)
    // OpenID Connect Discovery 1.0 §4: the one path every issuer serves its metadata at.
    return this.endpoints.get(key) ?? (key.endsWith('/.well-known/openid-configuration') ? 'discovery' : 'other')
  }

  /** The error an answer carries: any non-2xx, and a 2xx with an OAuth `error` member (Naver's token endpoint answers errors with 200). */
  private errorCodeOf(status: number, bytes: Buffer): string | undefined {
    const failed = status >= 400
    // Read from the bytes already in hand: a clone of the Response would cost more than the call's own parsing.
    if (!failed && !bytes.includes('"error"')) return undefined
    const body = parseObject(bytes.toString('utf8'))
    for (const member of failed ? ERROR_MEMBERS : ['error']) {
      const value = body?.[member]
      if (typeof value === 'string' || typeof value === 'number') {
        const code = String(value)
        return this.errorCodes.has(code) ? code : 'other'
      }
    }
    return failed ? `http_${Math.floor(status / 100)}xx` : undefined
  }
}

function endpointKey(url: string | URL): string {
  const parsed = typeof url === 'string' ? new URL(url) : url
  return `${parsed.origin}${parsed.pathname}`
}

function failureOf(error: unknown): string {
  if (isTimeout(error)) return 'timeout'
  if (causeOf(error, OversizedResponse)) return 'oversized'
  return 'unreachable'
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}
