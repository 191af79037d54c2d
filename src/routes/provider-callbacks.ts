// Providers calling the gateway about their users: Kakao's unlink callback (GET or POST,
// form fields) and Apple's server-to-server notifications (POST, `{"payload": "<JWS>"}`).
// The adapter authenticates the call and reads it; the domain acts on it. Kakao stops
// calling an endpoint that keeps failing, so a user we do not know is a 200 too; only a
// storage outage answers 503, so the provider tries again.

import type { FastifyInstance } from 'fastify'
import { UnsupportedProvider } from '../errors.js'
import { acceptFormBodies } from '../http/form-body.js'

// Nothing required here: the caller is authenticated first (401), then the fields are judged (400).
const unlinkFields = {
  type: 'object',
  properties: {
    app_id: { type: 'string', maxLength: 32 },
    user_id: { type: 'string', maxLength: 32 },
    referrer_type: { type: 'string', maxLength: 64 },
  },
} as const

const appleNotification = {
  type: 'object',
  required: ['payload'],
  properties: { payload: { type: 'string', minLength: 1, maxLength: 8192 } },
} as const

const outcomeReply = { type: 'object', required: ['outcome'], properties: { outcome: { type: 'string' } } } as const

export async function providerCallbackRoutes(app: FastifyInstance): Promise<void> {
  const { providers, revocations } = app.gateway
  acceptFormBodies(app, 4 * 1024)

  const hear = async (providerName: string, authorization: string | undefined, fields: Record<string, unknown>) => {
    const provider = providers.get(providerName)
    if (!provider.readNotice) throw new UnsupportedProvider(`${providerName} sends no notifications here`)
    const notice = await provider.readNotice({ authorization, fields })
    return { outcome: await revocations.heard(provider.name, notice) }
  }
  const kakao = { summary: "Kakao's unlink callback", tags: ['provider callbacks'], response: { 200: outcomeReply } }

  app.get<{ Querystring: Record<string, string> }>('/webhooks/kakao/unlink', { schema: { ...kakao, querystring: unlinkFields } }, async (request) =>
    hear('kakao', request.headers.authorization, request.query),
  )
  app.post<{ Body: Record<string, string> }>(
    '/webhooks/kakao/unlink',
    { schema: { ...kakao, body: unlinkFields, consumes: ['application/x-www-form-urlencoded'] } },
    async (request) => hear('kakao', request.headers.authorization, request.body),
  )
  app.post<{ Body: { payload: string } }>(
    '/webhooks/apple',
    { schema: { summary: "Apple's server-to-server notifications", tags: ['provider callbacks'], body: appleNotification, response: { 200: outcomeReply } } },
    async (request) => hear('apple', undefined, request.body),
  )
}
