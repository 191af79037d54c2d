import type { FastifyInstance } from 'fastify'
import { SIGNING_ALGORITHMS } from '../tokens/signing-keys.js'

export async function discoveryRoutes(app: FastifyInstance): Promise<void> {
  const { config, keys } = app.gateway
  const base = config.publicUrl

  // Public keys only; served from memory, so it keeps working when Redis or the database is down.
  app.get('/.well-known/jwks.json', async (_request, reply) =>
    reply.header('cache-control', 'public, max-age=300').send(keys.jwks),
  )

  app.get('/.well-known/openid-configuration', async (_request, reply) =>
    reply.header('cache-control', 'public, max-age=300').send({
      issuer: base,
      jwks_uri: `${base}/.well-known/jwks.json`,
      userinfo_endpoint: `${base}/auth/me`,
      token_endpoint: `${base}/auth/token`,
      access_token_signing_alg_values_supported: SIGNING_ALGORITHMS,
      token_endpoint_auth_methods_supported: ['none'],
      grant_types_supported: ['refresh_token'],
      login_endpoint: `${base}/auth/login`,
      login_start_endpoint: `${base}/auth/login/start`,
      signup_endpoint: `${base}/auth/signup`,
      logout_endpoint: `${base}/auth/logout`,
      providers_supported: app.gateway.providers.names,
    }),
  )
}
