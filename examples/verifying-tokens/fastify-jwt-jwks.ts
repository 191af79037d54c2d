// Verifying the gateway's access tokens with fastify-jwt-jwks. Use RS256 (or EdDSA) keys:
// the plugin accepts only those two algorithms, so ES256 tokens are refused.
import Fastify from 'fastify'
import { fastifyJwtJwks } from 'fastify-jwt-jwks'

export async function buildOrderService({ issuer, audience }: { issuer: string; audience: string }) {
  const app = Fastify()
  await app.register(fastifyJwtJwks, {
    jwksUrl: `${issuer}/.well-known/jwks.json`,
    issuer,
    audience,
    // Keys are cached for a week by default; 10 minutes lets a key removed after a rotation go.
    secretsTtl: 600_000,
    complete: true,
  })
  app.get('/orders', { preValidation: app.authenticate }, async (request, reply) => {
    const { header, payload } = request.user as { header: { typ?: string }; payload: Record<string, unknown> }
    // RFC 9068: an access token, not some other JWT signed by the same key.
    if (header.typ !== 'at+jwt') return reply.code(401).send({ message: 'not an access token' })
    return { claims: payload }
  })
  return app
}
