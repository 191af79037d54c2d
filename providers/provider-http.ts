// HTTP to providers, shared by every adapter: responses are read whole inside the call (so
// the call's timeout also covers a body that trickles in) and refused past a size no real
// provider answer approaches (oauth4webapi's response checks).

import type * as oidc from 'openid-client'
import { ProviderError } from '../src/errors.js'

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

/** A fetch for openid-client (`customFetch`) and our own provider calls. */
export const boundedFetch: oidc.CustomFetch = async (url, options) => {
  const response = await fetch(url, options as RequestInit)
  if (Number(response.headers.get('content-length')) > MAX_PROVIDER_RESPONSE_BYTES) {
    await response.body?.cancel().catch(() => undefined)
    throw new OversizedResponse(url)
  }
  const chunks: Uint8Array[] = []
  let size = 0
  if (response.body) {
    const reader = response.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > MAX_PROVIDER_RESPONSE_BYTES) {
        await reader.cancel().catch(() => undefined)
        throw new OversizedResponse(url)
      }
      chunks.push(value)
    }
  }
  const bodyless = [101, 204, 205, 304].includes(response.status)
  const headers = new Headers(response.headers)
  headers.delete('content-encoding')
  headers.delete('content-length')
  return new Response(bodyless ? null : Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers })
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
