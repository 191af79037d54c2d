import type { FastifyInstance } from 'fastify'
import { InvalidToken } from '../errors.js'
import { requireBearer } from '../http/bearer.js'

export async function meRoutes(app: FastifyInstance): Promise<void> {
  const { users, accessTokens, sessions } = app.gateway

  app.get('/auth/me', { preHandler: requireBearer(accessTokens, sessions) }, async (request, reply) => {
    const user = await users.findWithIdentities(request.principal!.userId)
    if (!user) throw new InvalidToken('the user of this access token no longer exists')
    return reply.header('cache-control', 'no-store').send(user)
  })
}
