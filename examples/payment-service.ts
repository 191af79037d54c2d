// A payment service that only other services call: it accepts machine-to-machine tokens
// (client_credentials) for its own resource that carry `payment:charge`.

import Fastify from 'fastify'
import { accessTokenVerifier } from '../verifier/index.js'
import type { ServiceOptions } from './order-service.js'

export async function buildPaymentService({ gatewayUrl, resource }: ServiceOptions) {
  const app = Fastify({ logger: false })
  await app.register(accessTokenVerifier, { issuer: gatewayUrl, audience: resource })
  const charges: { id: number; amount: number; chargedBy: string }[] = []

  app.post<{ Body: { amount: number } }>(
    '/charges',
    { preHandler: app.requireScope('payment:charge'), schema: { body: { type: 'object', required: ['amount'], properties: { amount: { type: 'integer', minimum: 1 } } } } },
    async (request, reply) => {
      // Only services charge: a user's token (it names a session) is not enough here.
      if (!request.accessToken!.clientId) return reply.code(403).send({ error: 'insufficient_scope', message: 'only services may charge' })
      const charge = { id: charges.length + 1, amount: request.body.amount, chargedBy: request.accessToken!.clientId }
      charges.push(charge)
      return reply.code(201).send(charge)
    },
  )
  return app
}
