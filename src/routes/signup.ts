import type { FastifyInstance } from 'fastify'
import { clientLabel } from '../http/browser.js'
import type { SignupRequest } from '../signup/signup.js'
import { authenticatedReply } from './shapes.js'

const signupBody = {
  type: 'object',
  required: ['signupToken', 'nickname'],
  additionalProperties: false,
  properties: {
    signupToken: { type: 'string', minLength: 1, maxLength: 256 },
    // At least one visible character: blanks and zero-width spaces are not a name.
    nickname: { type: 'string', minLength: 1, maxLength: 64, pattern: '[\\p{L}\\p{N}\\p{P}\\p{S}]' },
    email: { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' },
    photo: { type: 'string', maxLength: 2048, pattern: '^https://[^\\s]+$' },
  },
} as const

export async function signupRoutes(app: FastifyInstance): Promise<void> {
  const { signup, browser } = app.gateway

  app.post<{ Body: SignupRequest }>('/auth/signup', { schema: { body: signupBody } }, async (request, reply) => {
    const client = { channel: browser.channelOf(request), label: clientLabel(request) }
    const { tokens, user } = await signup.complete(request.body, client)
    reply.code(201)
    return authenticatedReply(app, reply, tokens, client.channel, { user, isNewUser: true })
  })
}
