// Verifying the gateway's access tokens with @fastify/jwt and get-jwks. Use ES256 or RS256
// keys: get-jwks turns keys into PEM with jwk-to-pem, which knows no Ed25519 (EdDSA).
import fastifyJwt, { type TokenOrHeader } from '@fastify/jwt'
import Fastify, { type FastifyRequest } from 'fastify'
import buildGetJwks from 'get-jwks'

export async function buildOrderService({ issuer, audience }: { issuer: string; audience: string }) {
  const app = Fastify()
  // Keys come from the gateway only: the domain is fixed here, never read from the token's `iss`.
  const jwks = buildGetJwks({ issuersWhitelist: [issuer], jwksPath: '/.well-known/jwks.json' })
  await app.register(fastifyJwt, {
    decode: { complete: true },
    secret: (_request: FastifyRequest, token: TokenOrHeader) => {
      const { kid, alg } = 'header' in token ? token.header : token
      return jwks.getPublicKey({ domain: issuer, kid, alg })
    },
    verify: {
      allowedIss: issuer,
      allowedAud: audience,
      algorithms: ['ES256', 'RS256'],
      checkTyp: 'at+jwt', // RFC 9068: an access token, not some other JWT signed by the same key
      requiredClaims: ['sub', 'client_id', 'exp'],
    },
  })
  app.get('/orders', { onRequest: (request) => request.jwtVerify() }, async (request) => ({ claims: request.user }))
  return app
}
