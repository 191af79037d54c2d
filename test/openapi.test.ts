// The OpenAPI document the gateway serves matches its contract: every endpoint is there,
// and the login request lists exactly the contract's fields and refuses others.

import t from 'tap'
import { startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())

t.test('GET /openapi.json describes the contract', async (t) => {
  const response = await gateway.app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(response.statusCode, 200)
  const document = response.json()
  t.match(document.openapi, /^3\./)
  const operations = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
  )
  for (const operation of [
    'POST /auth/login/start',
    'POST /auth/login',
    'POST /auth/signup',
    'POST /auth/token',
    'POST /auth/logout',
    'GET /auth/me',
    'GET /auth/authorize/{provider}',
    'GET /auth/callback/{provider}',
    'POST /auth/callback/{provider}',
    'POST /auth/identities',
    'POST /auth/identities/start',
    'DELETE /auth/identities/{identityId}',
    'DELETE /auth/me',
    'DELETE /admin/users/{userId}',
    'GET /webhooks/kakao/unlink',
    'POST /webhooks/kakao/unlink',
    'POST /webhooks/apple',
    'GET /auth/sessions',
    'DELETE /auth/sessions/{sessionId}',
    'POST /auth/logout-all',
    'GET /.well-known/jwks.json',
    'GET /.well-known/openid-configuration',
    'GET /health/live',
    'GET /health/ready',
  ]) {
    t.ok(operations.includes(operation), operation)
  }
  const login = document.paths['/auth/login'].post.requestBody.content['application/json'].schema
  t.same(Object.keys(login.properties).sort(), ['accessToken', 'code', 'codeVerifier', 'idToken', 'name', 'nonce', 'provider', 'redirectUri', 'resource', 'state'])
  t.equal(login.additionalProperties, false, 'unknown fields are refused, as documented')
  t.same(login.required, ['provider'])
})
