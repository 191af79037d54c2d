// The server-side redirect flow for web apps (the flow Kakao recommends): the provider
// redirects the browser to the gateway, which finishes the login and sends the browser
// back to the app. No token or signup ticket ever travels in a URL: the refresh token
// lands in its cookie, a pending signup in an HttpOnly cookie only POST /auth/signup sees.

import type { FastifyInstance } from 'fastify'
import { clientOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import type { ProviderCallback } from '../login/login.js'
import { providerName, urlString } from './shapes.js'

const providerParams = {
  type: 'object',
  required: ['provider'],
  properties: { provider: providerName },
} as const

const authorizeQuery = {
  type: 'object',
  required: ['returnTo'],
  additionalProperties: false,
  properties: { returnTo: urlString },
} as const

// Providers add their own parameters to the callback (scope, authuser, iss...): allowed, ignored.
const callbackQuery = {
  type: 'object',
  required: ['state'],
  properties: {
    state: { type: 'string', minLength: 1, maxLength: 256 },
    code: { type: 'string', minLength: 1, maxLength: 2048 },
    error: { type: 'string', maxLength: 256 },
  },
} as const

export async function redirectFlowRoutes(app: FastifyInstance): Promise<void> {
  const { login, browser, config } = app.gateway

  app.get<{ Params: { provider: string }; Querystring: { returnTo: string } }>(
    '/auth/authorize/:provider',
    { schema: { params: providerParams, querystring: authorizeQuery }, config: rateLimitedAs('login', config) },
    async (request, reply) => {
      const started = await login.startRedirect(request.params.provider, request.query.returnTo)
      browser.setFlowCookie(reply, 'loginBinding', started.browserBinding, started.expiresIn)
      return reply.header('cache-control', 'no-store').redirect(started.authorizationUrl, 302)
    },
  )

  app.get<{ Params: { provider: string }; Querystring: ProviderCallback }>(
    '/auth/callback/:provider',
    { schema: { params: providerParams, querystring: callbackQuery }, config: rateLimitedAs('login', config) },
    async (request, reply) => {
      const client = clientOf(request, 'cookie')
      const binding = browser.flowCookieOf(request, 'loginBinding')
      const { state, code, error } = request.query
      const result = await login.finishRedirect(request.params.provider, { state, code, error }, binding, client)
      browser.clearFlowCookie(reply, 'loginBinding')
      reply.header('cache-control', 'no-store')

      const returnTo = new URL(result.returnTo)
      if ('error' in result) {
        returnTo.searchParams.set('error', result.error)
      } else if (result.outcome.status === 'authenticated') {
        const { tokens } = result.outcome
        browser.setRefreshCookie(reply, tokens.refreshToken, tokens.refreshExpiresIn)
      } else {
        browser.setFlowCookie(reply, 'signupTicket', result.outcome.signupToken, config.signupTicketTtl)
        returnTo.searchParams.set('signup', 'required')
      }
      return reply.redirect(returnTo.href, 302)
    },
  )
}
