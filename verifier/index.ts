// A fastify plugin that protects a service's routes with the gateway's access tokens:
//
//   await app.register(accessTokenVerifier, { issuer: 'https://login.example', audience: 'https://orders.example' })
//   app.get('/orders', { preHandler: app.requireScope('read:order') }, async (request) => request.accessToken!.sub)
//
// Bearer tokens per RFC 6750: 401 invalid_token (missing, forged, expired, session ended),
// 403 insufficient_scope, each with its WWW-Authenticate challenge; 503 when the key set
// or the session store cannot be reached, so clients keep their tokens and retry.

import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { revocationCheck, type RevocationOptions } from './revocation.js'
import {
  createTokenVerifier,
  MAX_TOKEN_LENGTH,
  TokenRejected,
  VerifierUnavailable,
  type TokenVerifierOptions,
  type VerifiedAccessToken,
} from './verify.js'

export type { RedisRevocationOptions, RevocationCheck, RevocationOptions, SessionRedis } from './revocation.js'
export { MAX_TOKEN_LENGTH, type TokenVerifierOptions, type VerifiedAccessToken } from './verify.js'

export interface VerifierOptions extends TokenVerifierOptions {
  /**
   * Refuse tokens of ended sessions at once instead of at `exp`: `{ redis }` where the
   * service shares the gateway's Redis. Off (false) by default: a logged-out token then
   * stays usable until it expires (ACCESS_TOKEN_TTL).
   */
  revocation?: RevocationOptions | false
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `authenticate` / `requireScope` once the token has been verified. */
    accessToken?: VerifiedAccessToken
  }
  interface FastifyInstance {
    /** preHandler: a valid access token is required, whatever its scopes. */
    authenticate: preHandlerAsyncHookHandler
    /** preHandler factory: a valid access token carrying every one of `scopes`. */
    requireScope(...scopes: string[]): preHandlerAsyncHookHandler
  }
}

// RFC 6750 §2.1: `Bearer` (any case, RFC 9110 §11.1), one or more spaces, a b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i
// RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`, safe inside quotes.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/
const MAX_HEADER_LENGTH = 'Bearer '.length + MAX_TOKEN_LENGTH

const plugin: FastifyPluginAsync<VerifierOptions> = async (fastify, options) => {
  const verify = createTokenVerifier(options)
  const revocation = revocationCheck(options.revocation)

  /** The request's verified token; verifies at most once per request. */
  async function tokenOf(request: FastifyRequest): Promise<VerifiedAccessToken> {
    if (request.accessToken) return request.accessToken
    const header = request.headers.authorization
    if (header === undefined) throw new TokenRejected('an access token is required', false)
    const raw = header.length <= MAX_HEADER_LENGTH ? BEARER.exec(header)?.[1] : undefined
    if (raw === undefined) throw new TokenRejected('the Authorization header must be "Bearer <access token>"')
    const token = await verify(raw)
    if (revocation && !(await revocation.isActive(token, raw))) throw new TokenRejected('the session of this access token has ended')
    request.accessToken = token
    return token
  }

  function guard(scopes: string[]): preHandlerAsyncHookHandler {
    return async function (request, reply) {
      let token: VerifiedAccessToken
      try {
        token = await tokenOf(request)
      } catch (error) {
        return refuse(request, reply, error)
      }
      if (scopes.every((scope) => token.scopes.includes(scope))) return
      // RFC 6750 §3.1: 403, naming the scope the resource needs.
      return reply
        .code(403)
        .header('www-authenticate', `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"`)
        .send({ error: 'insufficient_scope', message: `the access token lacks the scope ${scopes.join(' ')}` })
    }
  }

  fastify.decorateRequest('accessToken', undefined)
  fastify.decorate('authenticate', guard([]))
  fastify.decorate('requireScope', (...scopes: string[]) => {
    if (scopes.length === 0 || !scopes.every((scope) => SCOPE_TOKEN.test(scope))) {
      throw new TypeError(`requireScope needs one or more scope tokens, got ${JSON.stringify(scopes)}`)
    }
    return guard(scopes)
  })
}

function refuse(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof TokenRejected) {
    // RFC 6750 §3.1: a request without credentials gets the bare challenge, no error code.
    return reply
      .code(401)
      .header('www-authenticate', error.credentialsSent ? 'Bearer error="invalid_token"' : 'Bearer')
      .send({ error: 'invalid_token', message: error.message })
  }
  if (error instanceof VerifierUnavailable) {
    const cause = error.cause instanceof Error ? error.cause.message : String(error.cause)
    request.log.warn({ cause }, error.message)
    return reply.code(503).header('retry-after', '1').send({ error: 'unavailable', message: error.message })
  }
  throw error
}

/**
 * Register once per app (it decorates the app itself, not an encapsulated child, so every
 * route can use `app.authenticate` and `app.requireScope`).
 */
export const accessTokenVerifier = Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'gateway-access-token-verifier',
}) as FastifyPluginAsync<VerifierOptions>
