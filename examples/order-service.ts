// An order service as a product team would write it: its routes are protected by the
// gateway's tokens through the verifier plugin, with revocation checking on, so a user who
// logs out (or is logged out by an operator) is refused at once.

import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import { accessTokenVerifier } from '../verifier/index.js'

export interface ServiceOptions {
  /** The gateway's PUBLIC_URL. */
  gatewayUrl: string
  /** This service's resource identifier: the `aud` its tokens must carry. */
  resource: string
  /** The gateway's Redis, for revocation checking; omit to accept tokens until they expire. */
  sessions?: Redis
}

export async function buildOrderService({ gatewayUrl, resource, sessions }: ServiceOptions) {
  const app = Fastify({ logger: false })
  await app.register(accessTokenVerifier, { issuer: gatewayUrl, audience: resource, revocation: sessions ? { redis: sessions } : false })
  const orders: { id: number; owner: string; item: string }[] = []

  app.get('/orders', { preHandler: app.requireScope('read:order') }, async (request) => ({
    orders: orders.filter((order) => order.owner === request.accessToken!.sub),
  }))

  app.post<{ Body: { item: string } }>(
    '/orders',
    { preHandler: app.requireScope('write:order'), schema: { body: { type: 'object', required: ['item'], properties: { item: { type: 'string' } } } } },
    async (request, reply) => {
      const order = { id: orders.length + 1, owner: request.accessToken!.sub, item: request.body.item }
      orders.push(order)
      return reply.code(201).send(order)
    },
  )
  return app
}
