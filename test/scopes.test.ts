// Roles give scopes on resources; an access token carries the scopes the user holds on
// the resource it is for (RFC 8707), nothing more, and no other resource accepts it.

import * as jose from 'jose'
import t from 'tap'
import { loginWithGoogle, REDIRECT_URI, startTestGateway } from './support/gateway.js'

const ORDERS = 'https://orders.example'
const PAYMENTS = 'https://payments.example'
const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const prisma = gateway.database.prisma

// What an operator sets up (the admin CLI does the same through src/admin).
await prisma.role.create({
  data: {
    name: 'order-clerk',
    scopes: { create: [{ resource: ORDERS, scope: 'read:order' }, { resource: ORDERS, scope: 'write:order' }, { resource: PAYMENTS, scope: 'refund' }] },
  },
})
const clerk = (await loginWithGoogle(gateway, { sub: 'clerk', name: 'Clara' })).json()
await prisma.userRole.create({ data: { user: { connect: { publicId: clerk.user.id } }, role: { connect: { name: 'order-clerk' } } } })

async function loginFor(sub: string, resource?: string) {
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const code = await gateway.codeFor(start.json().authorizationUrl, { sub, name: sub })
  return app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, state: start.json().state, redirectUri: REDIRECT_URI, ...(resource ? { resource } : {}) } })
}

t.test('a token for a resource carries exactly the scopes the user holds there', async (t) => {
  const login = await loginFor('clerk', ORDERS)
  t.equal(login.statusCode, 200, { body: login.body })
  const claims = jose.decodeJwt(login.json().accessToken)
  t.equal(claims.aud, ORDERS)
  t.equal(claims.scope, 'read:order write:order', 'the order scopes, not the payment one')

  const refreshed = await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: login.json().refreshToken } })
  t.match(jose.decodeJwt(refreshed.json().accessToken), { aud: ORDERS, scope: 'read:order write:order' }, 'a refresh keeps the resource and scopes')

  const gatewayToken = jose.decodeJwt(clerk.accessToken)
  t.equal(gatewayToken.aud, gateway.config.tokenAudience, 'without a resource, the token is for the gateway itself')
  t.notOk(gatewayToken.scope, 'and the clerk has no scope there')
})

t.test('a user without the role gets no scopes; a token for one resource is refused by another', async (t) => {
  const guest = await loginFor('guest', ORDERS)
  t.equal(guest.statusCode, 200)
  t.notOk(jose.decodeJwt(guest.json().accessToken).scope, 'no role, no scope')
  const me = await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${guest.json().accessToken}` } })
  t.equal(me.statusCode, 401, 'the gateway refuses a token made for the order service')
})

t.test('an unknown resource is refused before the provider is asked', async (t) => {
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const code = await gateway.codeFor(start.json().authorizationUrl, { sub: 'clerk', name: 'Clara' })
  const payload = { provider: 'google', code, state: start.json().state, redirectUri: REDIRECT_URI }
  const refused = await app.inject({ method: 'POST', url: '/auth/login', payload: { ...payload, resource: 'https://unknown.example' } })
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().error, 'invalid_target')
  const retried = await app.inject({ method: 'POST', url: '/auth/login', payload })
  t.equal(retried.statusCode, 200, 'the state was not spent and the code never reached the provider')
})
