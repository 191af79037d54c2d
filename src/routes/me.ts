import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { InvalidToken, ReauthenticationRequired } from '../common/errors.js'
import { requireBearer } from '../http/bearer.js'
import { linkedIdentity } from './identities.js'
import { BEARER_REFUSED, BEARER_SECURITY, BODY_REFUSALS, noContent, publicUser, responses, STORAGE_UNAVAILABLE } from './shapes.js'

/** Deleting the account needs a login this recent (the access token's `auth_time`). */
const RECENT_LOGIN_SECONDS = 10 * 60

const me = {
  description: 'the caller, with every identity linked to the account (Cache-Control: no-store)',
  type: 'object',
  required: [...publicUser.required, 'identities'],
  properties: { ...publicUser.properties, identities: { type: 'array', items: linkedIdentity } },
} as const

const GONE = 'the user of this access token no longer exists'

export async function meRoutes(app: FastifyInstance, { users, accessTokens, sessions, accountDeletion, browser }: Pick<GatewayServices, 'users' | 'accessTokens' | 'sessions' | 'accountDeletion' | 'browser'>): Promise<void> {

  app.get(
    '/auth/me',
    {
      preHandler: requireBearer(accessTokens, sessions),
      schema: {
        summary: 'The caller',
        tags: ['identities'],
        security: BEARER_SECURITY,
        response: responses({ 200: me }, {
          400: 'invalid_request: the request is malformed',
          401: `${BEARER_REFUSED[401]}; or ${GONE}`,
          ...STORAGE_UNAVAILABLE,
        }),
      },
    },
    async (request, reply) => {
      const user = await users.findWithIdentities(request.principal!.userId)
      if (!user) throw new InvalidToken('the user of this access token no longer exists')
      return reply.header('cache-control', 'no-store').send(user)
    },
  )

  // Deleting the account: sessions end at once, the data is gone, provider cleanup follows as
  // a job. A stolen access token alone must not do this: the login has to be recent.
  app.delete(
    '/auth/me',
    {
      preHandler: requireBearer(accessTokens, sessions),
      schema: {
        summary: 'Delete the account',
        description: '401 reauthentication_required when the login behind the access token (auth_time) is older than 10 minutes.',
        tags: ['identities'],
        security: BEARER_SECURITY,
        response: responses(
          { 204: { ...noContent, description: 'deleted; the refresh cookie is cleared' } },
          {
            400: 'invalid_request: the request is malformed',
            401: `${BEARER_REFUSED[401]}; reauthentication_required: the login is older than 10 minutes; or ${GONE}`,
            ...BODY_REFUSALS,
            ...STORAGE_UNAVAILABLE,
          },
        ),
      },
    },
    async (request, reply) => {
      const { userId, authTime } = request.principal!
      if (authTime === undefined || Date.now() / 1000 - authTime > RECENT_LOGIN_SECONDS) {
        throw new ReauthenticationRequired('log in again (within the last 10 minutes) to delete the account')
      }
      if (!(await accountDeletion.delete(userId, 'user'))) throw new InvalidToken('the user of this access token no longer exists')
      browser.clearRefreshCookie(reply)
      return reply.code(204).header('cache-control', 'no-store').send()
    },
  )
}
