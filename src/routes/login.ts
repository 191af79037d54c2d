import type { FastifyInstance, FastifyReply } from 'fastify'
import { InvalidRequest } from '../errors.js'
import { clientOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import type { Channel } from '../sessions/refresh-sessions.js'
import type { ClientContext, LoginOutcome, LoginService } from '../login/login.js'
import { authenticatedReply, providerName, urlString } from './shapes.js'

const loginBody = {
  type: 'object',
  required: ['provider'],
  additionalProperties: false,
  properties: {
    provider: providerName,
    code: { type: 'string', minLength: 1, maxLength: 2048 },
    redirectUri: urlString,
    state: { type: 'string', minLength: 1, maxLength: 256 },
    // RFC 7636 §4.1: 43 to 128 unreserved characters.
    codeVerifier: { type: 'string', pattern: '^[A-Za-z0-9._~-]{43,128}$' },
    nonce: { type: 'string', minLength: 1, maxLength: 256 },
    idToken: { type: 'string', minLength: 1, maxLength: 8192 },
    accessToken: { type: 'string', minLength: 1, maxLength: 4096 },
    // RFC 8707: the API the access tokens are for; default: the gateway itself.
    resource: urlString,
  },
} as const

const startBody = {
  type: 'object',
  required: ['provider', 'redirectUri'],
  additionalProperties: false,
  properties: { provider: providerName, redirectUri: urlString },
} as const

interface LoginBody {
  provider: string
  code?: string
  redirectUri?: string
  state?: string
  codeVerifier?: string
  nonce?: string
  idToken?: string
  accessToken?: string
  resource?: string
}

export async function loginRoutes(app: FastifyInstance): Promise<void> {
  const { login, browser } = app.gateway

  const limited = rateLimitedAs('login', app.gateway.config)
  app.post<{ Body: { provider: string; redirectUri: string } }>('/auth/login/start', { schema: { body: startBody }, config: limited }, async (request) => {
    browser.channelOf(request)
    return login.start(request.body.provider, request.body.redirectUri)
  })

  app.post<{ Body: LoginBody }>('/auth/login', { schema: { body: loginBody }, config: limited }, async (request, reply) => {
    const { provider, resource, ...credential } = request.body
    const client = { ...clientOf(request, browser.channelOf(request)), resource }
    const outcome = await loginWith(login, provider, credential, client)
    return sendLoginOutcome(app, reply, outcome, client.channel)
  })
}

/** Exactly one credential kind per request, each with only the fields that belong to it. */
function loginWith(login: LoginService, provider: string, credential: Omit<LoginBody, 'provider' | 'resource'>, client: ClientContext) {
  const { code, redirectUri, state, codeVerifier, nonce, idToken, accessToken } = credential
  const kinds = [code, idToken, accessToken].filter((value) => value !== undefined).length
  if (kinds !== 1) throw new InvalidRequest('send exactly one credential: a code, an idToken or an accessToken')
  if (idToken !== undefined) {
    if (redirectUri ?? state ?? codeVerifier) throw new InvalidRequest('an idToken login takes only an optional nonce')
    return login.loginWithIdToken(provider, idToken, nonce, client)
  }
  if (accessToken !== undefined) {
    if (redirectUri ?? state ?? codeVerifier ?? nonce) throw new InvalidRequest('an accessToken login takes no other fields')
    return login.loginWithAccessToken(provider, accessToken, client)
  }
  if (redirectUri === undefined) throw new InvalidRequest('a code needs the redirectUri it was issued for')
  if ((state === undefined) === (codeVerifier === undefined)) {
    throw new InvalidRequest('send either the state from /auth/login/start or your own codeVerifier, not both')
  }
  if (state !== undefined && nonce !== undefined) {
    throw new InvalidRequest('the nonce of a gateway-started login is kept by the gateway; do not send one')
  }
  return login.loginWithCode(provider, { code: code!, redirectUri, state, codeVerifier, nonce }, client)
}

export function sendLoginOutcome(app: FastifyInstance, reply: FastifyReply, outcome: LoginOutcome, channel: Channel) {
  if (outcome.status === 'signup_required') {
    const { status, signupToken, expiresIn, profile, missing } = outcome
    return reply.header('cache-control', 'no-store').send({ status, signupToken, expiresIn, profile, missing })
  }
  return authenticatedReply(app, reply, outcome.tokens, channel, { user: outcome.user, isNewUser: outcome.isNewUser })
}
