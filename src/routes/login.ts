import type { FastifyInstance, FastifyReply } from 'fastify'
import { clientOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import type { Channel } from '../sessions/refresh-sessions.js'
import type { LoginOutcome } from '../login/login.js'
import type { GivenName } from '../../providers/types.js'
import { credentialOf, credentialProperties, type CredentialBody } from './credentials.js'
import { authenticatedReply, providerName, urlString } from './shapes.js'

const loginBody = {
  type: 'object',
  required: ['provider'],
  additionalProperties: false,
  properties: {
    ...credentialProperties,
    // What a native app got from Apple on the first authorization: a new account's nickname.
    name: {
      type: 'object',
      additionalProperties: false,
      properties: { givenName: { type: 'string', maxLength: 100 }, familyName: { type: 'string', maxLength: 100 } },
    },
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

interface LoginBody extends CredentialBody {
  provider: string
  name?: GivenName
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
    const { provider, resource, name, ...credential } = request.body
    const client = { ...clientOf(request, browser.channelOf(request)), resource }
    const outcome = await login.login(provider, credentialOf(credential), client, name)
    return sendLoginOutcome(app, reply, outcome, client.channel)
  })
}

export function sendLoginOutcome(app: FastifyInstance, reply: FastifyReply, outcome: LoginOutcome, channel: Channel) {
  if (outcome.status === 'signup_required') {
    const { status, signupToken, expiresIn, profile, missing } = outcome
    return reply.header('cache-control', 'no-store').send({ status, signupToken, expiresIn, profile, missing })
  }
  return authenticatedReply(app, reply, outcome.tokens, channel, { user: outcome.user, isNewUser: outcome.isNewUser })
}
