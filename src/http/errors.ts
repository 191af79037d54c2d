// The one place where failures become HTTP answers: `{ error, message }` with the
// contract's status. Anything unexpected is a 500 with a generic message; details go to
// the log only (never stacks, Prisma errors or tokens in a response). That includes what
// fastify and Node answer on their own, before any route runs: a URL the router refuses
// (frameworkErrors) and a request Node's HTTP parser refuses (clientErrorHandler).

import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError, InsufficientScope, InvalidRequest, RateLimited, type ErrorCode } from '../common/errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** An OAuth endpoint (RFC 6749 §5.2): its errors also carry the text as `error_description`. */
    oauthErrors?: boolean
  }
}

// Keyed by every code there is: a new error class without a status does not compile.
const STATUS_BY_CODE = {
  invalid_request: 400,
  unsupported_provider: 400,
  invalid_redirect_uri: 400,
  invalid_state: 400,
  invalid_target: 400,
  invalid_scope: 400,
  unsupported_grant_type: 400,
  invalid_grant: 401,
  invalid_client: 401,
  invalid_signup_token: 401,
  invalid_token: 401,
  reauthentication_required: 401,
  origin_not_allowed: 403,
  insufficient_scope: 403,
  not_found: 404,
  identity_already_linked: 409,
  provider_already_linked: 409,
  last_identity: 409,
  conflict: 409,
  rate_limited: 429,
  provider_error: 502,
  provider_timeout: 504,
  unavailable: 503,
} as const satisfies Record<ErrorCode, number>

/** Fastify's own client errors, by their codes. */
const FASTIFY_ERRORS: Record<string, { status: number; error: string; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, error: 'payload_too_large', message: 'the request body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, error: 'unsupported_media_type', message: 'send the body as application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, error: 'invalid_request', message: 'the content length is invalid' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, error: 'invalid_request', message: 'the JSON body is empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, error: 'invalid_request', message: 'the body is not valid JSON' },
  // The router's own refusals (frameworkErrors below): a path parameter longer than
  // maxParamLength (100), which is the only 414 fastify gives, and broken %-encoding.
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, error: 'uri_too_long', message: 'the URL is too long' },
  FST_ERR_BAD_URL: { status: 400, error: 'invalid_request', message: 'the URL is not valid (broken %-encoding)' },
}

/** Hears of every 429 and 503 with its cause (the metrics). */
export interface RefusalObserver {
  refused(status: 429 | 503, cause: string): void
}

export function registerErrorHandling(app: FastifyInstance, refusals?: RefusalObserver): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof GatewayError) {
      const status: number = STATUS_BY_CODE[error.code as ErrorCode] ?? 500
      const { detail } = error as GatewayError
      // A 429 on a route with an address budget is that budget's; the one other 429 is a
      // session's own refresh budget (RATE_LIMIT_REFRESH), on the refresh route, which has none.
      if (status === 429) refusals?.refused(429, request.routeOptions.config?.rateLimitGroup ?? 'refresh')
      if (status === 503) refusals?.refused(503, 'storage')
      if (status >= 500 || detail) request.log.warn({ err: describe(error), detail }, error.message)
      if (status === 503) reply.header('retry-after', '1')
      if (error instanceof RateLimited && error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds))
      // RFC 6750 §3.1: no error code when the request carried no credentials at all.
      if (error.code === 'invalid_token') {
        reply.header('www-authenticate', request.headers.authorization === undefined ? 'Bearer' : 'Bearer error="invalid_token"')
      }
      if (error instanceof InsufficientScope) reply.header('www-authenticate', `Bearer error="insufficient_scope", scope="${error.scope}"`)
      // RFC 6749 §5.2: a failed client authentication answers with the scheme the client should use.
      if (error.code === 'invalid_client') reply.header('www-authenticate', 'Basic realm="gateway"')
      return reply.code(status).send(errorBody(request, error.code, error.message))
    }
    if (error.validation) {
      return reply.code(400).send(errorBody(request, 'invalid_request', validationMessage(error)))
    }
    const known = error.code ? FASTIFY_ERRORS[error.code] : undefined
    if (known) return reply.code(known.status).send(errorBody(request, known.error, known.message))
    // Malformed JSON and prototype-poisoning payloads arrive as 400 SyntaxErrors.
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send(errorBody(request, 'invalid_request', 'the request is malformed'))
    }
    request.log.error({ err: describe(error) }, 'unexpected failure')
    return reply.code(500).send(errorBody(request, 'internal_error', 'something went wrong on our side'))
  })

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route for ${request.method} ${request.url.split('?')[0]}` }),
  )
}

/**
 * Fastify's `frameworkErrors` option: the router's refusals, which never reach the error
 * handler. The request has no route here, so no route config (no OAuth shape) either.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = error.code ? FASTIFY_ERRORS[error.code] : undefined
  if (known) {
    void reply.code(known.status).send({ error: known.error, message: known.message })
    return
  }
  request.log.error({ err: describe(error) }, 'unexpected router failure')
  void reply.code(500).send({ error: 'internal_error', message: 'something went wrong on our side' })
}

/**
 * RFC 9112 §3.2: an HTTP/1.1 request without a Host header is a 400. Node checks this
 * itself but answers with an empty body, so the gateway's server turns that check off
 * (`requireHostHeader: false`) and this hook answers instead, in the contract's shape.
 */
export function refuseRequestsWithoutHost(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw new InvalidRequest('an HTTP/1.1 request must carry a Host header (RFC 9112 §3.2)')
    }
  })
}

/** What Node's HTTP parser refuses before fastify sees a request, by its error codes. */
const CLIENT_ERRORS: Record<string, { status: number; error: string; message: string }> = {
  // The request line and the headers together exceed Node's 16 KB (--max-http-header-size):
  // a long URL lands here too, as Node does not tell the two apart.
  HPE_HEADER_OVERFLOW: { status: 431, error: 'request_header_fields_too_large', message: 'the URL and headers exceed 16 KB' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, error: 'request_timeout', message: 'the request did not arrive in time' },
}
const MALFORMED_HTTP = { status: 400, error: 'invalid_request', message: 'the request is not valid HTTP' }

/**
 * Fastify's `clientErrorHandler` option (Node's 'clientError' event): the answer is written
 * to the socket by hand, as fastify's default does, then the connection is closed. Bound to
 * the fastify instance.
 */
export function clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has no one to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const { status, error: code, message } = (error.code ? CLIENT_ERRORS[error.code] : undefined) ?? MALFORMED_HTTP
  this.log.debug({ err: describe(error) }, 'client error')
  if (socket.writable) {
    const body = JSON.stringify({ error: code, message })
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    )
  }
  socket.destroy(error)
}

/** `{ error, message }` everywhere; OAuth clients read the same text as `error_description`. */
function errorBody(request: FastifyRequest, error: string, message: string) {
  return request.routeOptions.config?.oauthErrors ? { error, error_description: message, message } : { error, message }
}

function validationMessage(error: FastifyError): string {
  const first = error.validation?.[0]
  if (!first) return 'the request is invalid'
  const where = `${error.validationContext ?? 'body'}${first.instancePath ? first.instancePath.replace(/\//g, '.') : ''}`
  if (first.keyword === 'additionalProperties') {
    return `${where}: unknown field "${String((first.params as { additionalProperty?: unknown }).additionalProperty)}"`
  }
  return `${where} ${first.message ?? 'is invalid'}`
}

/** What a log line may say of an error: its name, message and the names of its causes. */
function describe(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) }
  return {
    type: error.name,
    message: error.message,
    code: (error as { code?: unknown }).code,
    ...(error.cause !== undefined ? { cause: describe(error.cause) } : {}),
  }
}
