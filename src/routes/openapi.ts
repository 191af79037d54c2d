// GET /openapi.json: the OpenAPI document generated from the routes' own JSON schemas, so
// it cannot drift from what the gateway validates.

import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'

/** Registered before the routes, so it sees every one of them. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Social-login gateway',
        version: '1',
        description: 'Kakao, Naver, Google and Apple login behind one API, with the gateway\'s own tokens. Every error is { "error", "message" }.',
      },
      servers: [{ url: app.gateway.config.publicUrl }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
