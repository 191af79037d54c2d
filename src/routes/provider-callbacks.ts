// Providers calling the gateway about their users: Kakao's unlink callback (GET or POST,
// form fields) and Apple's server-to-server notifications (POST, `{"payload": "<JWS>"}`).
// The adapter authenticates the call and reads it; the domain acts on it. Kakao stops
// calling an endpoint that keeps failing, so a user we do not know is a 200 too; only a
// storage outage answers 503, so the provider tries again.

import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { UnsupportedProvider } from '../common/errors.js'
import { acceptFormBodies } from '../http/form-body.js'
import { BODY_REFUSALS, PROVIDER_FAILED, responses, STORAGE_UNAVAILABLE } from './shapes.js'

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

const outcomeReply = {
  description: 'heard; what it did (a user the gateway does not know is `unknown`, and still a 200)',
  type: 'object',
  required: ['outcome'],
  properties: { outcome: { type: 'string', enum: ['unknown', 'unlinked', 'deleted', 'recorded', 'ignored'] } },
} as const

const NOT_ENABLED = 'unsupported_provider: the provider is not enabled here'

const KAKAO_REFUSALS = {
  400: `invalid_request: the fields are not valid (app_id not one of KAKAO_APP_IDS, user_id not a member id); ${NOT_ENABLED}`,
  401: 'invalid_token: the Authorization header is not `KakaoAK <this app\'s admin key>`, or KAKAO_ADMIN_KEY is not set',
  ...STORAGE_UNAVAILABLE,
} as const

const FORM_REFUSALS = {
  413: 'payload_too_large: the body is larger than 4 KB (a form) or 16 KB (JSON)',
  415: 'unsupported_media_type: the body is neither a form nor JSON',
} as const

const APPLE_REFUSALS = {
  400: `invalid_request: the body is not valid, or the notification names no event, subject or jti; ${NOT_ENABLED}`,
  401: "invalid_grant: the payload is not a JWS Apple signed, or it is too old",
  ...BODY_REFUSALS,
  ...PROVIDER_FAILED,
  ...STORAGE_UNAVAILABLE,
} as const

export async function providerCallbackRoutes(fastify: FastifyInstance, { providers, revocations }: Pick<GatewayServices, 'providers' | 'revocations'>): Promise<void> {
  const app = fastify.withTypeProvider<JsonSchemaToTsProvider>()
  acceptFormBodies(app, 4 * 1024)

  const hear = async (providerName: string, authorization: string | undefined, fields: Record<string, unknown>) => {
    const provider = providers.get(providerName)
    if (!provider.readNotice) throw new UnsupportedProvider(`${providerName} sends no notifications here`)
    const notice = await provider.readNotice({ authorization, fields })
    return { outcome: await revocations.heard(provider.name, notice) }
  }
  const kakao = { summary: "Kakao's unlink callback", tags: ['provider callbacks'], security: [{ kakaoAdminKey: [] }] }

  app.get(
    '/webhooks/kakao/unlink',
    { schema: { ...kakao, querystring: unlinkFields, response: responses({ 200: outcomeReply }, KAKAO_REFUSALS) } },
    async (request) => hear('kakao', request.headers.authorization, request.query),
  )
  app.post(
    '/webhooks/kakao/unlink',
    {
      schema: {
        ...kakao,
        body: unlinkFields,
        consumes: ['application/x-www-form-urlencoded'],
        response: responses({ 200: outcomeReply }, { ...KAKAO_REFUSALS, ...FORM_REFUSALS }),
      },
    },
    async (request) => hear('kakao', request.headers.authorization, request.body),
  )
  app.post(
    '/webhooks/apple',
    {
      schema: {
        summary: "Apple's server-to-server notifications",
        tags: ['provider callbacks'],
        body: appleNotification,
        response: responses({ 200: outcomeReply }, APPLE_REFUSALS),
      },
    },
    async (request) => hear('apple', undefined, request.body),
  )
}
