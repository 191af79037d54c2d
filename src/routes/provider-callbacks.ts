// Providers calling the gateway about a user: Kakao's unlink callback (GET or POST, form
// fields). The adapter authenticates the call and reads who it is about; the domain unlinks
// and ends sessions. Kakao stops calling an endpoint that keeps failing, so a user we do
// not know is a 200 too; only a storage outage answers 503, so Kakao tries again.

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

type UnlinkFields = { app_id?: string; user_id?: string; referrer_type?: string }

export async function providerCallbackRoutes(app: FastifyInstance): Promise<void> {
  const { providers, revocations } = app.gateway
  acceptFormBodies(app, 4 * 1024)

  const kakaoUnlink = async (authorization: string | undefined, fields: UnlinkFields) => {
    const kakao = providers.get('kakao')
    if (!kakao.readRevocationNotice) throw new UnsupportedProvider('kakao takes no unlink callback here')
    const notice = kakao.readRevocationNotice({ authorization, fields })
    const outcome = await revocations.revoked('kakao', notice.subject, notice.reason)
    return { outcome }
  }
  const schema = { summary: "Kakao's unlink callback", tags: ['provider callbacks'] }

  app.get<{ Querystring: UnlinkFields }>('/webhooks/kakao/unlink', { schema: { ...schema, querystring: unlinkFields } }, async (request) =>
    kakaoUnlink(request.headers.authorization, request.query),
  )
  app.post<{ Body: UnlinkFields }>(
    '/webhooks/kakao/unlink',
    { schema: { ...schema, body: unlinkFields, consumes: ['application/x-www-form-urlencoded'] } },
    async (request) => kakaoUnlink(request.headers.authorization, request.body),
  )
}
