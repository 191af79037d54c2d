import type { SwaggerTransform } from '@fastify/swagger'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { BrowserPolicy } from '../http/browser.js'
import type { GatewayServices } from '../services.js'
import { clientOf } from '../http/browser.js'
import { countedAlongside, rateLimitedAs } from '../http/rate-limits.js'
import type { Channel } from '../sessions/refresh-sessions.js'
import type { LoginOutcome } from '../login/login.js'
import { CREDENTIAL_RULE, credentialOf, credentialProperties, documentCredentialKinds } from './credentials.js'
import {
  authenticatedReply,
  BODY_REFUSALS,
  missingFields,
  ORIGIN_REFUSED,
  PROVIDER_FAILED,
  providerName,
  providerProfile,
  RATE_LIMITED,
  responses,
  signedInReply,
  STORAGE_UNAVAILABLE,
  urlString,
} from './shapes.js'

const loginBody = {
  description: CREDENTIAL_RULE,
  type: 'object',
  required: ['provider'],
  additionalProperties: false,
  properties: {
    ...credentialProperties,
    // What a native app got from Apple on the first authorization: a new account's nickname.
    name: {
      description: "Apple only (it hands the name to the app, never in its tokens): a new account's nickname when Apple's profile has none. Any other provider refuses it (400 invalid_request).",
      type: 'object',
      additionalProperties: false,
      properties: { givenName: { type: 'string', maxLength: 100 }, familyName: { type: 'string', maxLength: 100 } },
    },
    resource: { ...urlString, description: 'RFC 8707: the API the access tokens are for; default: the gateway itself' },
  },
} as const

const startBody = {
  type: 'object',
  required: ['provider', 'redirectUri'],
  additionalProperties: false,
  properties: { provider: providerName, redirectUri: urlString },
} as const

const startedReply = {
  description: 'the provider URL to send the user to; state comes back with the code, for POST /auth/login',
  type: 'object',
  required: ['authorizationUrl', 'state', 'expiresIn'],
  properties: {
    authorizationUrl: { type: 'string' },
    state: { type: 'string' },
    expiresIn: { type: 'integer', description: 'seconds the state is good for' },
  },
} as const

/** sendLoginOutcome's answer when the identity has no account yet. */
const signupRequiredReply = {
  type: 'object',
  required: ['status', 'signupToken', 'expiresIn', 'profile', 'missing'],
  properties: {
    status: { type: 'string', enum: ['signup_required'] },
    signupToken: { type: 'string', description: 'for POST /auth/signup' },
    expiresIn: { type: 'integer', description: 'seconds the signup token is good for' },
    profile: providerProfile,
    missing: { ...missingFields, description: 'what POST /auth/signup must add' },
  },
} as const

const loginReply = {
  description: 'signed in (status authenticated), or an identity without an account that must sign up first (status signup_required); Cache-Control: no-store',
  oneOf: [signedInReply, signupRequiredReply],
} as const

const START_REFUSALS = {
  400: 'invalid_request: the body is not valid; unsupported_provider; invalid_redirect_uri: not one of ALLOWED_REDIRECT_URIS',
  ...ORIGIN_REFUSED,
  ...BODY_REFUSALS,
  ...RATE_LIMITED,
  ...PROVIDER_FAILED,
  ...STORAGE_UNAVAILABLE,
} as const

const LOGIN_REFUSALS = {
  400: 'invalid_request: the body is not valid, not exactly one credential, a credential kind the provider does not take, or a name for a provider other than Apple; unsupported_provider; invalid_redirect_uri; invalid_state: the state is unknown, used, expired or for another login; invalid_target: the resource is not one the gateway issues tokens for',
  401: 'invalid_grant: the provider refused the credential, or it failed validation (an ID token is accepted once), or the account was deleted while the login was under way',
  ...ORIGIN_REFUSED,
  409: 'identity_already_linked: a parallel login or link of the same identity got in the way (rare; try again)',
  ...BODY_REFUSALS,
  ...RATE_LIMITED,
  ...PROVIDER_FAILED,
  ...STORAGE_UNAVAILABLE,
} as const

const TAGS = ['login']

/**
 * The login body in the document: the credential kinds, and `name` only with a provider
 * that takes one (login.ts refuses it with the others), so a client generated from the
 * document never builds a request the gateway refuses for its shape.
 */
function documentLoginBody(namedProviders: string[]): SwaggerTransform {
  return (route) => {
    const { schema, url } = documentCredentialKinds(route) as { schema: { body: object }; url: string }
    // OpenAPI 3.0 has no if/then: "no name, or a provider that takes one".
    const noName = { not: { required: ['name'] } }
    const nameOnlyWith = namedProviders.length > 0 ? { anyOf: [noName, { properties: { provider: { enum: namedProviders } } }] } : noName
    return { url, schema: { ...schema, body: { ...schema.body, allOf: [nameOnlyWith] } } }
  }
}

export async function loginRoutes(fastify: FastifyInstance, { login, browser, config, providers }: Pick<GatewayServices, 'login' | 'browser' | 'config' | 'providers'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()

  const limited = rateLimitedAs('login', config)
  // The login's own Redis call (its state) overlaps the count: see countedAlongside.
  const countedLogin = countedAlongside(fastify, 'login', config)
  /** The providers that take a `name` (Apple: it hands the name to the app only). */
  const namedProviders = providers.names.filter((name) => providers.get(name).nameFromCallback)
  app.post(
    '/auth/login/start',
    {
      schema: {
        summary: 'Start a login the gateway finishes (state, nonce and PKCE stay with the gateway)',
        tags: TAGS,
        body: startBody,
        response: responses({ 200: startedReply }, START_REFUSALS),
      },
      config: limited,
    },
    async (request) => {
      browser.channelOf(request)
      return login.start(request.body.provider, request.body.redirectUri)
    },
  )

  app.post(
    '/auth/login',
    {
      schema: {
        summary: 'Log in with a provider credential: a code, an idToken or an accessToken',
        tags: TAGS,
        body: loginBody,
        response: responses({ 200: loginReply }, LOGIN_REFUSALS),
      },
      config: { ...countedLogin.config, swaggerTransform: documentLoginBody(namedProviders) },
      onRequest: countedLogin.onRequest,
    },
    async (request, reply) => {
      const { provider, resource, name, ...credential } = request.body
      const client = { ...clientOf(request, browser.channelOf(request)), resource }
      const outcome = await login.login(provider, credentialOf(credential), client, name, request.admission)
      return sendLoginOutcome(browser, reply, outcome, client.channel)
    },
  )
}

export function sendLoginOutcome(browser: Pick<BrowserPolicy, 'setRefreshCookie'>, reply: FastifyReply, outcome: LoginOutcome, channel: Channel) {
  if (outcome.status === 'signup_required') {
    const { status, signupToken, expiresIn, profile, missing } = outcome
    return reply.header('cache-control', 'no-store').send({ status, signupToken, expiresIn, profile, missing })
  }
  return authenticatedReply(browser, reply, outcome.tokens, channel, { user: outcome.user, isNewUser: outcome.isNewUser })
}
