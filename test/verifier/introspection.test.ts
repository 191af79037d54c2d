// RFC 7662 introspection: only authenticated clients may ask; a token is active while it is
// genuine, unexpired and its session lives, and a client learns only about tokens meant
// for it (§4). A resource server without access to the gateway's Redis uses it through
// the verifier, and sees a logout within its cache time.

import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ClientDirectory, type NewClient } from '../../src/clients/client-directory.js'
import { REDIRECT_URI, startTestGateway } from '../support/gateway.js'
import { call, startResourceServer } from './fixtures/resource-server.js'

const ORDERS = 'https://orders.example'
const PAYMENTS = 'https://payments.example'

const gateway = await startTestGateway({ database: 'pglite', listen: true })
t.teardown(() => gateway.close())
const { publicUrl, tokenAudience } = gateway.config
const introspectUrl = `${publicUrl}/oauth/introspect`
const clients = new ClientDirectory(gateway.database.prisma)
/** The order service: the resource server that introspects, granted something on its own resource. */
const service = await clients.create('order service')
await clients.grant(service.clientId, ORDERS, ['introspect'])
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

async function introspect(token: string, authorization = basic(service.clientId, service.clientSecret)) {
  const response = await fetch(introspectUrl, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

/** The browserless login, for one resource (RFC 8707); without one the token is for the gateway itself. */
async function login(sub: string, resource?: string) {
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const { authorizationUrl, state } = start.json()
  const code = await gateway.codeFor(authorizationUrl, { sub, name: sub })
  const response = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state, ...(resource ? { resource } : {}) } })
  if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode} ${response.body}`)
  return response.json() as { accessToken: string; refreshToken: string; user: { id: string } }
}

/** A client's own token from the token endpoint (client_credentials). */
async function clientToken(client: NewClient, resource?: string): Promise<string> {
  const response = await fetch(`${publicUrl}/oauth/token`, {
    method: 'POST',
    headers: { authorization: basic(client.clientId, client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(resource ? { resource } : {}) }),
  })
  if (!response.ok) throw new Error(`no client token: ${response.status} ${await response.text()}`)
  return ((await response.json()) as { access_token: string }).access_token
}

t.test('the introspection endpoint', async (t) => {
  const user = await login('introspected', ORDERS)
  const active = await introspect(user.accessToken)
  t.equal(active.status, 200)
  t.match(active.body, { active: true, token_type: 'Bearer', sub: user.user.id, aud: ORDERS, iss: publicUrl, sid: String })

  const m2m = await gateway.services.accessTokens.issueForClient({ clientId: 'cart', audience: ORDERS, scope: 'read:order' })
  t.match((await introspect(m2m.accessToken)).body, { active: true, client_id: 'cart', scope: 'read:order', aud: ORDERS }, "another client's token for the service's resource")

  t.same((await introspect('garbage')).body, { active: false }, 'garbage is merely inactive')
  t.same((await introspect(user.refreshToken)).body, { active: false }, 'a refresh token is never an active access token')

  const unauthenticated = await fetch(introspectUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${user.accessToken}` })
  t.equal(unauthenticated.status, 401, 'only authenticated clients may ask')
  t.equal((await introspect(user.accessToken, basic(service.clientId, 'wrong-secret'))).status, 401)

  await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: user.refreshToken } })
  t.same((await introspect(user.accessToken)).body, { active: false }, 'after logout the token is inactive')
})

t.test('a client learns only about tokens meant for it (RFC 7662 §4)', async (t) => {
  const garbage = await introspect('garbage')

  const forTheGateway = await login('gateway-user')
  t.same((await introspect(forTheGateway.accessToken)).body, { active: false }, "a live user token for the gateway itself: no sub, no sid, just inactive")

  const ops = await clients.create('ops')
  await clients.grant(ops.clientId, tokenAudience, ['admin'])
  const adminToken = await clientToken(ops)
  const foreign = await introspect(adminToken)
  t.same(foreign, garbage, "another client's admin token reads exactly as an invalid one")

  const payments = await clients.create('payment service')
  await clients.grant(payments.clientId, PAYMENTS, ['charge'])
  t.same((await introspect(await clientToken(payments, PAYMENTS))).body, { active: false }, "another client's token for a resource the caller is not granted")
  t.same((await introspect((await login('payer', PAYMENTS)).accessToken)).body, { active: false }, 'a user token for a resource the caller is not granted')

  const own = await clientToken(service, ORDERS)
  t.match((await introspect(own)).body, { active: true, client_id: service.clientId, sub: service.clientId, aud: ORDERS }, 'its own token')

  const forOrders = await login('orders-user', ORDERS)
  t.match((await introspect(forOrders.accessToken)).body, { active: true, aud: ORDERS })
  await clients.revoke(service.clientId, ORDERS)
  t.same((await introspect(forOrders.accessToken)).body, { active: false }, 'a revoked grant takes effect at once')
  t.match((await introspect(own)).body, { active: true, client_id: service.clientId }, 'its own token stays its own, grant or not')
  await clients.grant(service.clientId, ORDERS, ['introspect'])
})

t.test('a verifier using introspection sees a logout within its cache time', async (t) => {
  const server = await startResourceServer({
    issuer: publicUrl,
    audience: ORDERS,
    revocation: { introspection: { url: introspectUrl, clientId: service.clientId, clientSecret: service.clientSecret, cacheSeconds: 1 } },
  })
  t.teardown(() => server.close())
  const user = await login('cached', ORDERS)
  t.equal((await call(server, '/me', user.accessToken)).statusCode, 200)
  const loggedOutAt = Date.now()
  await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: user.refreshToken } })
  let refusedAfter: number | undefined
  while (Date.now() - loggedOutAt < 5000) {
    if ((await call(server, '/me', user.accessToken)).statusCode === 401) {
      refusedAfter = Date.now() - loggedOutAt
      break
    }
    await sleep(25)
  }
  t.comment(`refused ${refusedAfter} ms after logout (cache 1 s)`)
  t.ok(refusedAfter !== undefined && refusedAfter <= 1500, 'within the cache time')

  const ungranted = await clients.create('ungranted service')
  const misconfigured = await startResourceServer({
    issuer: publicUrl,
    audience: ORDERS,
    revocation: { introspection: { url: introspectUrl, clientId: ungranted.clientId, clientSecret: ungranted.clientSecret, cacheSeconds: 1 } },
  })
  t.teardown(() => misconfigured.close())
  const live = await login('cached', ORDERS)
  t.equal((await call(misconfigured, '/me', live.accessToken)).statusCode, 401, "a service whose client holds no grant on its resource sees every token as inactive")

  const unreachable = await startResourceServer({
    issuer: publicUrl,
    audience: ORDERS,
    revocation: { introspection: { url: 'http://127.0.0.1:1/oauth/introspect', clientId: service.clientId, clientSecret: service.clientSecret } },
  })
  t.teardown(() => unreachable.close())
  const fresh = await login('cached', ORDERS)
  t.equal((await call(unreachable, '/me', fresh.accessToken)).statusCode, 503, 'an unreachable gateway fails closed with 503')
})
