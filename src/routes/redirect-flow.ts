// The server-side redirect flow for web apps (the flow Kakao recommends): the provider
// redirects the browser to the gateway, which finishes the login and sends the browser
// back to the app. No token or signup ticket ever travels in a URL: the refresh token
// lands in its cookie, a pending signup in an HttpOnly cookie only POST /auth/signup sees.
// Apple answers with a form POST instead (response_mode=form_post): POST /auth/callback/apple.
// The same callbacks finish the web way of linking another identity (POST /auth/identities/start).

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { GatewayServices } from '../services.js'
import { InvalidRequest } from '../common/errors.js'
import { clientOf } from '../http/browser.js'
import { acceptFormBodies } from '../http/form-body.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import type { ProviderCallback, RedirectOutcome } from '../login/login.js'
import {
  PATH_REFUSALS,
  PROVIDER_FAILED,
  providerName,
  RATE_LIMITED,
  redirect,
  responses,
  STORAGE_UNAVAILABLE,
  urlString,
} from './shapes.js'

// Provider names are lower-case words (kakao, or the <NAME> of OIDC_<NAME>_ISSUER): a segment such
// as "." or ".." would not even reach the route as itself, since URL parsers remove dot segments.
const providerParams = {
  type: 'object',
  required: ['provider'],
  properties: { provider: { ...providerName, pattern: '^[a-z][a-z0-9]*$' } },
} as const

const authorizeQuery = {
  type: 'object',
  required: ['returnTo'],
  additionalProperties: false,
  properties: { returnTo: urlString },
} as const

const callbackFields = {
  state: { type: 'string', minLength: 1, maxLength: 256 },
  code: { type: 'string', minLength: 1, maxLength: 2048 },
  error: { type: 'string', maxLength: 256 },
} as const

// Providers add their own parameters to the callback (scope, authuser, iss...): allowed, ignored.
const callbackQuery = { type: 'object', required: ['state'], properties: callbackFields } as const

// Apple's form: the ID token is ignored (the one from our own code exchange counts), `user`
// carries the name on the first authorization only.
const formPostCallback = {
  type: 'object',
  required: ['state'],
  properties: { ...callbackFields, id_token: { type: 'string', maxLength: 8192 }, user: { type: 'string', maxLength: 4096 } },
} as const

const FORM_BODY_LIMIT = 16 * 1024

const TAGS = ['redirect flow']

const toProvider = redirect('to the provider, to log in there; a cookie binds the flow to this browser (Cache-Control: no-store)')
const backToApp = redirect(
  'back to returnTo: signed in (the refresh cookie is set), `?signup=required` (the pending signup is in an HttpOnly cookie for GET and POST /auth/signup), `?linked=<provider>`, or `?error=<code>` / `?link_error=<code>` (Cache-Control: no-store)',
)

const AUTHORIZE_REFUSALS = {
  400: 'invalid_request: returnTo is missing, not an absolute URL, or not on an allowed web origin; unsupported_provider',
  ...PATH_REFUSALS,
  ...RATE_LIMITED,
  ...PROVIDER_FAILED,
  ...STORAGE_UNAVAILABLE,
} as const

const CALLBACK_REFUSALS = {
  400: 'invalid_state: the state is unknown, used, expired, or the flow was started in another browser; invalid_request: the parameters are not valid, or a flow cookie arrived twice; unsupported_provider',
  ...PATH_REFUSALS,
  ...RATE_LIMITED,
  ...STORAGE_UNAVAILABLE,
} as const

const FORM_POST_REFUSALS = {
  ...CALLBACK_REFUSALS,
  400: `${CALLBACK_REFUSALS[400]}; or the provider answers with a redirect (GET), not a form POST`,
  413: 'payload_too_large: the form is larger than 16 KB',
  415: 'unsupported_media_type: the body is neither a form nor JSON',
} as const

export async function redirectFlowRoutes(fastify: FastifyInstance, { login, browser, config, providers }: Pick<GatewayServices, 'login' | 'browser' | 'config' | 'providers'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  const limited = { config: rateLimitedAs('login', config) }

  app.get(
    '/auth/authorize/:provider',
    {
      schema: {
        summary: 'Start the redirect flow (web): the browser goes to the provider, and comes back to returnTo',
        tags: TAGS,
        params: providerParams,
        querystring: authorizeQuery,
        response: responses({ 302: toProvider }, AUTHORIZE_REFUSALS),
      },
      ...limited,
    },
    async (request, reply) => {
      const started = await login.startRedirect(request.params.provider, request.query.returnTo)
      browser.bindFlowToBrowser(reply, started)
      return reply.header('cache-control', 'no-store').redirect(started.authorizationUrl, 302)
    },
  )

  app.get(
    '/auth/callback/:provider',
    {
      schema: {
        summary: "The provider's redirect back to the gateway",
        description: 'Errors of the login itself (a cancel at the provider, a refused code) go back to returnTo as `?error=<code>`; only a request that names no flow of this browser is answered here.',
        tags: TAGS,
        params: providerParams,
        querystring: callbackQuery,
        response: responses({ 302: backToApp }, CALLBACK_REFUSALS),
      },
      ...limited,
    },
    async (request, reply) => {
      const { state, code, error } = request.query
      return finish(request, request.params.provider, reply, 'loginBinding', { state, code, error })
    },
  )

  acceptFormBodies(app, FORM_BODY_LIMIT)
  app.post(
    '/auth/callback/:provider',
    {
      schema: {
        summary: "The provider's form POST back to the gateway (Apple: response_mode=form_post)",
        tags: TAGS,
        params: providerParams,
        body: formPostCallback,
        consumes: ['application/x-www-form-urlencoded'],
        response: responses({ 302: backToApp }, FORM_POST_REFUSALS),
      },
      ...limited,
    },
    async (request, reply) => {
      if (providers.get(request.params.provider).responseMode !== 'form_post') {
        throw new InvalidRequest(`${request.params.provider} answers with a redirect (GET), not a form POST`)
      }
      const { state, code, error, user } = request.body
      return finish(request, request.params.provider, reply, 'formPostBinding', { state, code, error, user })
    },
  )

  async function finish(request: FastifyRequest, provider: string, reply: FastifyReply, cookie: 'loginBinding' | 'formPostBinding', callback: ProviderCallback) {
    const binding = browser.flowCookieOf(request, cookie)
    const result = await login.finishRedirect(provider, callback, binding, clientOf(request, 'cookie'))
    browser.clearFlowCookie(reply, cookie)
    reply.header('cache-control', 'no-store')
    return reply.redirect(returnUrlFor(result, reply).href, 302)
  }

  /** Where the browser goes back to, and what it learns there: never a token, only codes. */
  function returnUrlFor(result: RedirectOutcome, reply: FastifyReply): URL {
    const returnTo = new URL(result.returnTo)
    if ('error' in result) {
      returnTo.searchParams.set(result.linking ? 'link_error' : 'error', result.error)
    } else if ('linked' in result) {
      returnTo.searchParams.set('linked', result.linked)
    } else if (result.outcome.status === 'authenticated') {
      const { tokens } = result.outcome
      browser.setRefreshCookie(reply, tokens.refreshToken, tokens.refreshExpiresIn)
    } else {
      browser.setFlowCookie(reply, 'signupTicket', result.outcome.signupToken, config.signupTicketTtl)
      returnTo.searchParams.set('signup', 'required')
    }
    return returnTo
  }
}
