import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { InvalidSignupToken } from '../common/errors.js'
import { clientOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import { EMAIL_MAX_LENGTH, NICKNAME_MAX_LENGTH, PHOTO_MAX_LENGTH } from '../common/profile-text.js'
import {
  authenticatedReply,
  BODY_REFUSALS,
  missingFields,
  ORIGIN_REFUSED,
  providerProfile,
  RATE_LIMITED,
  responses,
  signedInReply,
  STORAGE_UNAVAILABLE,
} from './shapes.js'

const signupBody = {
  type: 'object',
  // Without signupToken, the ticket comes from the redirect flow's HttpOnly cookie.
  required: ['nickname'],
  additionalProperties: false,
  properties: {
    signupToken: {
      type: 'string',
      minLength: 1,
      maxLength: 256,
      description: "from POST /auth/login's signup_required answer; leave it out only in a browser the redirect flow left a pending signup in (its HttpOnly cookie, sent with an allowed Origin)",
    },
    // Types and sizes only: what the text may contain (NFC, no control, invisible or
    // bidirectional characters, a visible nickname, an https photo) is the signup rule,
    // src/common/profile-text.ts, which provider profiles are held to as well.
    nickname: { type: 'string', minLength: 1, maxLength: NICKNAME_MAX_LENGTH, description: 'taken in NFC and trimmed; at least one visible character, no control, invisible or bidirectional characters' },
    email: { type: 'string', minLength: 3, maxLength: EMAIL_MAX_LENGTH, description: 'an address like name@example.com; taken in NFC and lower-cased' },
    photo: { type: 'string', minLength: 1, maxLength: PHOTO_MAX_LENGTH, description: 'an https URL' },
    resource: { type: 'string', minLength: 1, maxLength: 2048, description: 'RFC 8707: the API the access tokens are for; default: the gateway itself' },
  },
} as const

const pendingSignup = {
  description: 'what the provider told us, and what the signup form must still ask for (Cache-Control: no-store)',
  type: 'object',
  required: ['provider', 'profile', 'missing', 'expiresIn'],
  properties: {
    provider: { type: 'string' },
    profile: providerProfile,
    missing: missingFields,
    expiresIn: { type: 'integer', description: 'seconds the pending signup is good for' },
  },
} as const

const SIGNUP_REFUSALS = {
  400: "invalid_request: the body is not valid (a nickname, email or photo the signup rules refuse, a required field missing), or the cookie twice; invalid_target: the resource is not one the gateway issues tokens for",
  401: 'invalid_signup_token: the signup token is unknown, used or expired, or there is none (no signupToken and no pending signup in this browser)',
  ...ORIGIN_REFUSED,
  409: 'identity_already_linked: the identity got an account meanwhile',
  ...BODY_REFUSALS,
  ...RATE_LIMITED,
  ...STORAGE_UNAVAILABLE,
} as const

const PENDING_REFUSALS = {
  400: 'invalid_request: the pending signup cookie arrived twice',
  401: 'invalid_signup_token: there is no pending signup in this browser, or it has expired',
  ...STORAGE_UNAVAILABLE,
} as const

const TAGS = ['login']

/**
 * For the OpenAPI document: the redirect flow's pending signup, an HttpOnly cookie the
 * browser sends by itself (src/http/browser.ts names it; `__Secure-` wherever cookies are
 * Secure). Optional in the document, as no client sets it: without it POST /auth/signup
 * needs a signupToken, and GET /auth/signup answers 401. Fastify does not validate
 * cookies; the route reads this one itself.
 */
function ticketCookie(secure: boolean) {
  const name = `${secure ? '__Secure-' : ''}signup_ticket`
  return {
    type: 'object',
    properties: { [name]: { type: 'string', description: 'the pending signup the redirect flow left in this browser (HttpOnly; set by GET /auth/callback/{provider})' } },
  }
}

export async function signupRoutes(fastify: FastifyInstance, { signup, browser, config }: Pick<GatewayServices, 'signup' | 'browser' | 'config'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  const secure = browser.cookie.secure
  const signupSchema = {
    summary: 'Finish a signup: the account, and its first session',
    description:
      'The ticket is the signupToken in the body; without one, the pending signup the redirect flow left in this browser (an HttpOnly cookie, which needs an allowed Origin). With neither, 401 invalid_signup_token.',
    tags: TAGS,
    cookies: ticketCookie(secure),
    body: signupBody,
    response: responses({ 201: { description: 'the new account, signed in (Cache-Control: no-store)', ...signedInReply } }, SIGNUP_REFUSALS),
  }
  const pendingSchema = {
    summary: "The redirect flow's pending signup in this browser (its HttpOnly cookie)",
    tags: TAGS,
    cookies: ticketCookie(secure),
    response: responses({ 200: pendingSignup }, PENDING_REFUSALS),
  }

  app.post(
    '/auth/signup',
    { schema: signupSchema, config: rateLimitedAs('login', config) },
    async (request, reply) => {
      const { resource, ...fields } = request.body
      const client = { ...clientOf(request, browser.channelOf(request)), resource }
      const fromCookie = fields.signupToken === undefined
      const signupToken = fields.signupToken ?? browser.flowCookieOf(request, 'signupTicket')
      // The schema lets the body leave the ticket out (a browser's is a cookie): no ticket either way is no signup, not a malformed body.
      if (signupToken === undefined) throw new InvalidSignupToken('no signupToken, and no pending signup in this browser')
      if (fromCookie) browser.requireOriginForCookie(request)
      const { tokens, user } = await signup.complete({ ...fields, signupToken }, client)
      if (fromCookie) browser.clearFlowCookie(reply, 'signupTicket')
      reply.code(201)
      return authenticatedReply(browser, reply, tokens, client.channel, { user, isNewUser: true })
    },
  )

  // The pending signup of the redirect flow: what the provider told us and what is missing.
  app.get(
    '/auth/signup',
    { schema: pendingSchema },
    async (request, reply) => {
      const signupToken = browser.flowCookieOf(request, 'signupTicket')
      if (signupToken === undefined) throw new InvalidSignupToken('there is no pending signup in this browser')
      return reply.header('cache-control', 'no-store').send(await signup.pending(signupToken))
    },
  )
}
