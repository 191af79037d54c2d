// Machine-to-machine tokens (RFC 6749 §4.4): a service authenticates with its client id and
// secret and gets a token for one resource holding only the scopes it asked for and was
// granted there. Everything else is refused the OAuth way (§5.2), and the secret itself
// is never stored.

import * as jose from 'jose'
import * as oidc from 'openid-client'
import t, { type Test } from 'tap'
import { ClientDirectory, type NewClient } from '../src/clients/client-directory.js'
import { hashSecret } from '../src/common/secrets.js'
import { startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const clients = new ClientDirectory(gateway.database.prisma)
const GATEWAY = gateway.config.tokenAudience
const ORDERS = 'https://orders.example'
const PAYMENTS = 'https://payments.example'
const keySet = jose.createLocalJWKSet((await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json())

/** RFC 6749 §2.3.1: each part form-urlencoded, then `id:secret` in base64. */
function basic(clientId: string, clientSecret: string) {
  const encode = (part: string) => encodeURIComponent(part).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`
}

function tokenRequest(form: Record<string, string> | string, authorization?: string) {
  return app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
    payload: typeof form === 'string' ? form : new URLSearchParams(form).toString(),
  })
}

const ask = (client: NewClient, form: Record<string, string>) => tokenRequest({ grant_type: 'client_credentials', ...form }, basic(client.clientId, client.clientSecret))

/** A service that may read and write orders and read payments. */
const cart = await clients.create('cart service')
await clients.grant(cart.clientId, ORDERS, ['read:order', 'write:order'])
await clients.grant(cart.clientId, PAYMENTS, ['read:payment'])

function refusedTheOAuthWay(t: Test, response: Awaited<ReturnType<typeof tokenRequest>>, status: number, error: string) {
  t.equal(response.statusCode, status, `${error}: status ${status}`)
  const body = response.json()
  t.equal(body.error, error)
  t.type(body.message, 'string', 'the contract: message')
  t.equal(body.error_description, body.message, 'RFC 6749 §5.2: error_description, the same text')
  t.notOk('access_token' in body)
}

t.test('a granted client gets a token for the resource with only what it asked for', async (t) => {
  const response = await ask(cart, { resource: ORDERS, scope: 'read:order' })
  t.equal(response.statusCode, 200)
  t.equal(response.headers['cache-control'], 'no-store', 'RFC 6749 §5.1')
  t.equal(response.headers.pragma, 'no-cache')
  const body = response.json()
  t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type'])
  t.equal(body.token_type, 'Bearer')
  t.equal(body.expires_in, gateway.config.accessTokenTtl)
  t.equal(body.scope, 'read:order')

  const { payload, protectedHeader } = await jose.jwtVerify(body.access_token, keySet, { issuer: gateway.config.publicUrl, audience: ORDERS, typ: 'at+jwt' })
  t.equal(protectedHeader.kid, 'test-key-1')
  t.equal(payload.aud, ORDERS, 'aud is the resource, and only it')
  t.equal(payload.scope, 'read:order', 'only the scope asked for, not write:order')
  t.equal(payload.client_id, cart.clientId)
  t.equal(payload.sub, cart.clientId, 'RFC 9068 §2.2: sub is the client when no user is involved')
  t.notOk('sid' in payload, 'no session: nothing to end')
  t.ok(payload.jti && payload.iat && payload.exp)
})

t.test('without scope, the token carries every scope granted on the resource; without resource, it is for the gateway', async (t) => {
  const all = await ask(cart, { resource: ORDERS })
  t.equal(all.statusCode, 200)
  t.equal(all.json().scope, 'read:order write:order')
  t.equal(jose.decodeJwt(all.json().access_token).scope, 'read:order write:order')

  const emptyScope = await tokenRequest(`grant_type=client_credentials&resource=${encodeURIComponent(ORDERS)}&scope=`, basic(cart.clientId, cart.clientSecret))
  t.equal(emptyScope.json().scope, 'read:order write:order', 'RFC 6749 §3.2: a parameter without a value counts as omitted')

  const reporting = await clients.create('reporting')
  await clients.grant(reporting.clientId, GATEWAY, ['audit:read'])
  const own = await ask(reporting, {})
  t.equal(own.statusCode, 200)
  t.equal(jose.decodeJwt(own.json().access_token).aud, GATEWAY, 'the default resource is TOKEN_AUDIENCE')
  const verified = await gateway.services.accessTokens.verifyClient(own.json().access_token)
  t.same(verified, { clientId: reporting.clientId, scopes: ['audit:read'] }, "the gateway's own client-token check accepts it")
  refusedTheOAuthWay(t, await ask(cart, {}), 400, 'invalid_target')
})

t.test('a token for resource A carries nothing of resource B', async (t) => {
  const forOrders = (await ask(cart, { resource: ORDERS })).json().access_token as string
  const claims = jose.decodeJwt(forOrders)
  t.equal(claims.aud, ORDERS)
  t.notMatch(String(claims.scope), /payment/)
  t.notMatch(JSON.stringify(claims), /payments\.example|read:payment/, 'not a trace of B')
  await t.rejects(jose.jwtVerify(forOrders, keySet, { issuer: gateway.config.publicUrl, audience: PAYMENTS }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' }, 'B refuses it')
  await t.rejects(gateway.services.accessTokens.verifyClient(forOrders), 'and so does the gateway itself')

  const forPayments = await ask(cart, { resource: PAYMENTS, scope: 'read:payment' })
  t.equal(forPayments.statusCode, 200)
  refusedTheOAuthWay(t, await ask(cart, { resource: PAYMENTS, scope: 'read:order' }), 400, 'invalid_scope')
})

t.test('client authentication failures are 401 invalid_client with a Basic challenge, all alike', async (t) => {
  const form = { grant_type: 'client_credentials', resource: ORDERS }
  const cases: [string, string | undefined][] = [
    ['a wrong secret', basic(cart.clientId, 'not-the-secret')],
    ['the secret of another client', basic(cart.clientId, (await clients.create('other')).clientSecret)],
    ['an unknown client', basic('no-such-client', cart.clientSecret)],
    ['no Authorization header', undefined],
    ['Basic with bad base64', 'Basic !!!not base64!!!'],
    ['Basic without a colon', `Basic ${Buffer.from(cart.clientId).toString('base64')}`],
    ['Basic with an empty secret', `Basic ${Buffer.from(`${cart.clientId}:`).toString('base64')}`],
    ['Basic with a bad percent-encoding', `Basic ${Buffer.from(`${cart.clientId}:%zz`).toString('base64')}`],
    ['a Bearer token instead', 'Bearer abc.def.ghi'],
    ['an oversized header', `Basic ${'A'.repeat(5000)}`],
  ]
  const messages = new Set<string>()
  for (const [what, authorization] of cases) {
    const response = await tokenRequest(form, authorization)
    t.equal(response.statusCode, 401, what)
    t.equal(response.json().error, 'invalid_client', what)
    t.equal(response.headers['www-authenticate'], 'Basic realm="gateway"', `${what}: WWW-Authenticate`)
    t.equal(response.json().error_description, response.json().message)
    if (what.startsWith('a wrong') || what.startsWith('the secret') || what.startsWith('an unknown')) messages.add(response.json().message)
  }
  t.equal(messages.size, 1, 'a wrong secret and an unknown client read the same')

  for (const [what, body] of [
    ['a wrong secret in the body', { client_id: cart.clientId, client_secret: 'not-the-secret' }],
    ['an unknown client in the body', { client_id: 'no-such-client', client_secret: cart.clientSecret }],
    ['a secret in the body without its client_id', { client_secret: cart.clientSecret }],
    ['a client id without a secret', { client_id: cart.clientId }],
  ] as const) {
    const response = await tokenRequest({ ...form, ...body })
    t.equal(response.statusCode, 401, what)
    t.equal(response.json().error, 'invalid_client', what)
  }
  t.equal((await tokenRequest({ ...form, client_id: cart.clientId, client_secret: 'not-the-secret' })).json().message, [...messages][0], 'the body method fails with the same words')
})

t.test('client_secret_post works as HTTP Basic does, but never both in one request (RFC 6749 §2.3)', async (t) => {
  const posted = await tokenRequest({ grant_type: 'client_credentials', resource: ORDERS, scope: 'read:order', client_id: cart.clientId, client_secret: cart.clientSecret })
  t.equal(posted.statusCode, 200, { body: posted.body })
  const claims = jose.decodeJwt(posted.json().access_token)
  t.match(claims, { client_id: cart.clientId, sub: cart.clientId, aud: ORDERS, scope: 'read:order' })

  const both = await tokenRequest({ grant_type: 'client_credentials', resource: ORDERS, client_id: cart.clientId, client_secret: cart.clientSecret }, basic(cart.clientId, cart.clientSecret))
  refusedTheOAuthWay(t, both, 400, 'invalid_request')
  t.match(both.json().message, /one client authentication method/)
  const bothWithOtherSecret = await tokenRequest({ grant_type: 'client_credentials', resource: ORDERS, client_secret: 'anything' }, basic(cart.clientId, cart.clientSecret))
  refusedTheOAuthWay(t, bothWithOtherSecret, 400, 'invalid_request')
})

t.test('the client id and secret are form-urlencoded inside Basic (RFC 6749 §2.3.1)', async (t) => {
  const [head, ...rest] = cart.clientId
  const percentEncoded = `%${head!.charCodeAt(0).toString(16).toUpperCase()}${rest.join('')}`
  const response = await tokenRequest(
    { grant_type: 'client_credentials', resource: ORDERS },
    `Basic ${Buffer.from(`${percentEncoded}:${cart.clientSecret}`).toString('base64')}`,
  )
  t.equal(response.statusCode, 200)
  const sameClientInBody = await tokenRequest({ grant_type: 'client_credentials', resource: ORDERS, client_id: cart.clientId }, basic(cart.clientId, cart.clientSecret))
  t.equal(sameClientInBody.statusCode, 200, 'a client_id in the body matching the Basic one is fine')
  refusedTheOAuthWay(t, await tokenRequest({ grant_type: 'client_credentials', client_id: 'someone-else' }, basic(cart.clientId, cart.clientSecret)), 400, 'invalid_request')
})

t.test('resources and scopes the client does not hold are refused', async (t) => {
  refusedTheOAuthWay(t, await ask(cart, { resource: 'https://unknown.example' }), 400, 'invalid_target')
  refusedTheOAuthWay(t, await ask(cart, { resource: `${ORDERS}#fragment` }), 400, 'invalid_target')
  refusedTheOAuthWay(t, await ask(cart, { resource: 'not a uri' }), 400, 'invalid_target')
  refusedTheOAuthWay(t, await tokenRequest(`grant_type=client_credentials&resource=${encodeURIComponent(ORDERS)}&resource=${encodeURIComponent(PAYMENTS)}`, basic(cart.clientId, cart.clientSecret)), 400, 'invalid_target')

  refusedTheOAuthWay(t, await ask(cart, { resource: ORDERS, scope: 'read:order delete:order' }), 400, 'invalid_scope')
  refusedTheOAuthWay(t, await ask(cart, { resource: ORDERS, scope: 'admin' }), 400, 'invalid_scope')
  refusedTheOAuthWay(t, await ask(cart, { resource: ORDERS, scope: 'read:order  write:order' }), 400, 'invalid_scope')
  refusedTheOAuthWay(t, await ask(cart, { resource: ORDERS, scope: 'read:"order"' }), 400, 'invalid_scope')

  const revocable = await clients.create('revocable')
  await clients.grant(revocable.clientId, ORDERS, ['read:order'])
  t.equal((await ask(revocable, { resource: ORDERS })).statusCode, 200)
  await clients.revoke(revocable.clientId, ORDERS)
  refusedTheOAuthWay(t, await ask(revocable, { resource: ORDERS }), 400, 'invalid_target')
  await clients.delete(revocable.clientId)
  refusedTheOAuthWay(t, await ask(revocable, { resource: ORDERS }), 401, 'invalid_client')
})

t.test('grant types other than client_credentials and malformed requests', async (t) => {
  const credentials = basic(cart.clientId, cart.clientSecret)
  refusedTheOAuthWay(t, await tokenRequest({ grant_type: 'password', username: 'a', password: 'b' }, credentials), 400, 'unsupported_grant_type')
  refusedTheOAuthWay(t, await tokenRequest({ grant_type: 'refresh_token', refresh_token: 'x' }, credentials), 400, 'unsupported_grant_type')
  refusedTheOAuthWay(t, await tokenRequest({ resource: ORDERS }, credentials), 400, 'invalid_request')
  refusedTheOAuthWay(t, await tokenRequest('grant_type=client_credentials&grant_type=client_credentials', credentials), 400, 'invalid_request')
  // RFC 6749 §3.1: a parameter is never sent twice, even empty (an empty one alone counts as left out).
  refusedTheOAuthWay(t, await tokenRequest('grant_type=client_credentials&scope=&scope=', credentials), 400, 'invalid_request')
  for (const odd of ['%00', '%0A', '%C3%A9', '%7F']) {
    // Each would reach the database (a resource is looked up there); PostgreSQL cannot store NUL.
    const answer = await tokenRequest(`grant_type=client_credentials&resource=https%3A%2F%2Forders.example${odd}`, credentials)
    refusedTheOAuthWay(t, answer, 400, 'invalid_request')
    t.match(answer.json().message, /resource must be printable ASCII/, `${odd} in resource: a clear 400, never a 500`)
  }
  const oddScope = await tokenRequest({ grant_type: 'client_credentials', resource: ORDERS, scope: 'orders:read\u0000' }, credentials)
  refusedTheOAuthWay(t, oddScope, 400, 'invalid_request')
  const withCharset = await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8', authorization: credentials.replace('Basic', 'basic') },
    payload: 'grant_type=client_credentials&resource=https%3A%2F%2Forders.example',
  })
  t.equal(withCharset.statusCode, 200, 'a charset parameter and a lower-case scheme are fine')
  const ignored = await tokenRequest({ grant_type: 'client_credentials', resource: ORDERS, audience: 'whatever' }, credentials)
  t.equal(ignored.statusCode, 200, 'RFC 6749 §3.2: unknown parameters are ignored')

  const json = await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: { 'content-type': 'application/json', authorization: credentials },
    payload: { grant_type: 'client_credentials' },
  })
  refusedTheOAuthWay(t, json, 400, 'invalid_request')
  t.match(String(json.headers['content-type']), /^application\/json/, 'answered in our JSON error shape')
  t.match(json.json().message, /x-www-form-urlencoded/)
  refusedTheOAuthWay(t, await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'text/plain', authorization: credentials }, payload: 'grant_type=client_credentials' }), 400, 'invalid_request')
  refusedTheOAuthWay(t, await app.inject({ method: 'POST', url: '/oauth/token', headers: { authorization: credentials } }), 400, 'invalid_request')
  const huge = await tokenRequest({ grant_type: 'client_credentials', pad: 'x'.repeat(8 * 1024) }, credentials)
  t.equal(huge.statusCode, 413, 'the form has its own small body limit')

  const jsonElsewhere = await app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'refreshToken=x' })
  t.equal(jsonElsewhere.statusCode, 415, 'the rest of the gateway still takes JSON only')
  t.notOk('error_description' in jsonElsewhere.json(), 'and answers in the plain contract shape')
})

t.test('the secret is stored only as a hash and shown only at creation', async (t) => {
  const created = await clients.create('hashed')
  t.equal(created.clientSecret.length, 43, '256 bits, base64url')
  t.match(created.clientSecret, /^[A-Za-z0-9_-]{43}$/)
  const row = await gateway.database.prisma.oAuthClient.findUniqueOrThrow({ where: { clientId: created.clientId } })
  t.equal(row.secretHash, hashSecret(created.clientSecret))
  const everything = JSON.stringify(await gateway.database.prisma.oAuthClient.findMany({ include: { grants: true } }), (_key, value) => (typeof value === 'bigint' ? String(value) : value))
  for (const secret of [created.clientSecret, cart.clientSecret]) t.notOk(everything.includes(secret), 'no secret in any client row')
  const listed = JSON.stringify(await clients.list())
  t.notOk(listed.includes(created.clientSecret) || listed.includes(row.secretHash), 'the listing shows neither the secret nor its hash')
})

t.test('an off-the-shelf OAuth client (openid-client) gets tokens and reads our errors, with either client authentication', async (t) => {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  const server = { issuer: gateway.config.publicUrl, token_endpoint: `http://127.0.0.1:${port}/oauth/token` }
  const configuration = (secret: string) => {
    const config = new oidc.Configuration(server, cart.clientId, undefined, oidc.ClientSecretBasic(secret))
    oidc.allowInsecureRequests(config)
    return config
  }

  const tokens = await oidc.clientCredentialsGrant(configuration(cart.clientSecret), { resource: ORDERS, scope: 'write:order' })
  t.equal(tokens.token_type, 'bearer', 'openid-client normalises the type')
  t.equal(tokens.scope, 'write:order')
  t.equal(jose.decodeJwt(tokens.access_token).aud, ORDERS)

  // With a WWW-Authenticate header on the 401, openid-client reports the challenge itself.
  const challenged = await oidc.clientCredentialsGrant(configuration('wrong'), { resource: ORDERS }).catch((error: unknown) => error)
  t.match(challenged, { code: 'OAUTH_WWW_AUTHENTICATE_CHALLENGE', status: 401, cause: [{ scheme: 'basic', parameters: { realm: 'gateway' } }] })
  const refused = await oidc.clientCredentialsGrant(configuration(cart.clientSecret), { resource: ORDERS, scope: 'admin' }).catch((error: unknown) => error)
  t.match(refused, { code: 'OAUTH_RESPONSE_BODY_ERROR', error: 'invalid_scope', error_description: 'this client is not granted admin on that resource', status: 400 })

  // openid-client's default client authentication is client_secret_post.
  const byDefault = new oidc.Configuration(server, cart.clientId, cart.clientSecret)
  oidc.allowInsecureRequests(byDefault)
  const posted = await oidc.clientCredentialsGrant(byDefault, { resource: ORDERS, scope: 'read:order' })
  t.equal(jose.decodeJwt(posted.access_token).client_id, cart.clientId, 'client_secret_post, as openid-client sends it by default')
})
