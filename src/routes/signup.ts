import type { FastifyInstance } from 'fastify'
import { InvalidRequest, InvalidSignupToken } from '../errors.js'
import { clientOf } from '../http/browser.js'
import { rateLimitedAs } from '../http/rate-limits.js'
import { EMAIL_MAX_LENGTH, NICKNAME_MAX_LENGTH, PHOTO_MAX_LENGTH } from '../identity/profile-text.js'
import type { SignupRequest } from '../signup/signup.js'
import { authenticatedReply } from './shapes.js'

type SignupBody = Omit<SignupRequest, 'signupToken'> & { signupToken?: string; resource?: string }

const signupBody = {
  type: 'object',
  // Without signupToken, the ticket comes from the redirect flow's HttpOnly cookie.
  required: ['nickname'],
  additionalProperties: false,
  properties: {
    signupToken: { type: 'string', minLength: 1, maxLength: 256 },
    // Types and sizes only: what the text may contain (NFC, no control, invisible or
    // bidirectional characters, a visible nickname, an https photo) is the signup rule,
    // src/identity/profile-text.ts, which provider profiles are held to as well.
    nickname: { type: 'string', minLength: 1, maxLength: NICKNAME_MAX_LENGTH },
    email: { type: 'string', minLength: 3, maxLength: EMAIL_MAX_LENGTH },
    photo: { type: 'string', minLength: 1, maxLength: PHOTO_MAX_LENGTH },
    resource: { type: 'string', minLength: 1, maxLength: 2048 },
  },
} as const

export async function signupRoutes(app: FastifyInstance): Promise<void> {
  const { signup, browser } = app.gateway

  app.post<{ Body: SignupBody }>('/auth/signup', { schema: { body: signupBody }, config: rateLimitedAs('login', app.gateway.config) }, async (request, reply) => {
    const { resource, ...fields } = request.body
    const client = { ...clientOf(request, browser.channelOf(request)), resource }
    const fromCookie = fields.signupToken === undefined
    const signupToken = fields.signupToken ?? browser.flowCookieOf(request, 'signupTicket')
    if (signupToken === undefined) throw new InvalidRequest('body must have required property \'signupToken\'')
    if (fromCookie) browser.requireOriginForCookie(request)
    const { tokens, user } = await signup.complete({ ...fields, signupToken }, client)
    if (fromCookie) browser.clearFlowCookie(reply, 'signupTicket')
    reply.code(201)
    return authenticatedReply(app, reply, tokens, client.channel, { user, isNewUser: true })
  })

  // The pending signup of the redirect flow: what the provider told us and what is missing.
  app.get('/auth/signup', async (request, reply) => {
    const signupToken = browser.flowCookieOf(request, 'signupTicket')
    if (signupToken === undefined) throw new InvalidSignupToken('there is no pending signup in this browser')
    return reply.header('cache-control', 'no-store').send(await signup.pending(signupToken))
  })
}
