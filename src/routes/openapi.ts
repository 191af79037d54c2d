// GET /openapi.json: the OpenAPI document generated from the routes' own JSON schemas, so
// it cannot drift from what the gateway validates. Each route lists every answer it can
// give, with its schema (src/routes/shapes.ts: `responses`), and the credentials it takes.

import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'

type Operation = { requestBody?: { required?: boolean; content?: Record<string, { schema?: { nullable?: boolean } }> } }

/** Registered before the routes, so it sees every one of them. */
export async function registerOpenApi(app: FastifyInstance, publicUrl: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Social-login gateway',
        version: '1',
        description:
          'Kakao, Naver, Google and Apple login behind one API, with the gateway\'s own tokens. Every error is { "error", "message" } (the OAuth endpoints add "error_description").',
      },
      servers: [{ url: publicUrl }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'an access token of the gateway (a user\'s; on /admin, an admin client\'s)' },
          clientSecretBasic: { type: 'http', scheme: 'basic', description: 'an OAuth client: client_id and client_secret (RFC 6749 §2.3.1)' },
          kakaoAdminKey: { type: 'apiKey', in: 'header', name: 'Authorization', description: "Kakao's callback: `KakaoAK <the app's admin key>`" },
        },
      },
    },
    transformObject: (document) => optionalNullableBodies('openapiObject' in document ? document.openapiObject : document.swaggerObject),
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}

/**
 * @fastify/swagger marks every request body required; a body whose schema admits null may
 * be left out (fastify validates a missing body as null), as a browser's refresh does.
 */
function optionalNullableBodies<Document extends { paths?: object }>(document: Document): Document {
  for (const methods of Object.values(document.paths ?? {}) as Record<string, Operation>[]) {
    for (const operation of Object.values(methods)) {
      const body = operation.requestBody
      if (body && Object.values(body.content ?? {}).some((media) => media.schema?.nullable === true)) body.required = false
    }
  }
  return document
}
