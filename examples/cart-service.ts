// A cart service: users check out with their own token (scope `cart:checkout` on the cart
// resource); the cart then charges the payment service as itself, with a client_credentials
// token from the gateway (RFC 6749 §4.4) that it caches until shortly before it expires.

import Fastify from 'fastify'
import { accessTokenVerifier } from '../verifier/index.js'
import type { ServiceOptions } from './order-service.js'

export interface CartOptions extends ServiceOptions {
  client: { id: string; secret: string }
  /** Where the payment service listens, and its resource identifier. */
  payments: { url: string; resource: string }
}

export async function buildCartService(options: CartOptions) {
  const app = Fastify({ logger: false })
  await app.register(accessTokenVerifier, { issuer: options.gatewayUrl, audience: options.resource })
  const serviceToken = clientCredentials(options)

  app.post<{ Body: { amount: number } }>(
    '/checkout',
    { preHandler: app.requireScope('cart:checkout'), schema: { body: { type: 'object', required: ['amount'], properties: { amount: { type: 'integer', minimum: 1 } } } } },
    async (request, reply) => {
      const charged = await fetch(`${options.payments.url}/charges`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await serviceToken()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ amount: request.body.amount }),
      })
      if (!charged.ok) return reply.code(502).send({ error: 'payment_failed', message: `the payment service answered ${charged.status}` })
      return reply.code(201).send({ buyer: request.accessToken!.sub, charge: await charged.json() })
    },
  )
  return app
}

/** A client_credentials token for the payment service, fetched once and reused until it nearly expires. */
function clientCredentials({ gatewayUrl, client, payments }: CartOptions): () => Promise<string> {
  let cached: { token: string; renewAt: number } | undefined
  return async () => {
    if (cached && Date.now() < cached.renewAt) return cached.token
    const basic = Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')
    const response = await fetch(`${gatewayUrl}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: payments.resource, scope: 'payment:charge' }),
    })
    if (!response.ok) throw new Error(`the gateway refused the cart's client credentials: ${response.status} ${await response.text()}`)
    const { access_token: token, expires_in: expiresIn } = (await response.json()) as { access_token: string; expires_in: number }
    cached = { token, renewAt: Date.now() + (expiresIn - 30) * 1000 }
    return token
  }
}
