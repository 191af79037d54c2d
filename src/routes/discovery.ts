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
      // The OAuth token endpoint (RFC 8414) is the machine-to-machine one; users refresh at /auth/token.
      token_endpoint: `${base}/oauth/token`,
      token_endpoint_auth_methods_supported: ['client_secret_basic'],
      grant_types_supported: ['client_credentials'],
      access_token_signing_alg_values_supported: SIGNING_ALGORITHMS,
      introspection_endpoint: `${base}/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
      refresh_endpoint: `${base}/auth/token`,
      sessions_endpoint: `${base}/auth/sessions`,
      login_endpoint: `${base}/auth/login`,
      login_start_endpoint: `${base}/auth/login/start`,
      signup_endpoint: `${base}/auth/signup`,
      logout_endpoint: `${base}/auth/logout`,
      providers_supported: app.gateway.providers.names,
    }),
  )
}
