// The examples end to end: an order service and a payment service protected by the
// verifier, and a cart service that charges the payment service with its own
// client_credentials token. Real gateway, real Redis, real HTTP between the services.

import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { AuditLog } from '../src/audit/audit-log.js'
import { RoleDirectory } from '../src/admin/roles.js'
import { ClientDirectory } from '../src/clients/client-directory.js'
import { buildCartService } from '../examples/cart-service.js'
import { buildOrderService } from '../examples/order-service.js'
import { buildPaymentService } from '../examples/payment-service.js'
import { loginWithGoogle, nativeAppAuthorization, startTestGateway } from './support/gateway.js'
import { connectSessionRedis } from './verifier/fixtures/resource-server.js'

const ORDERS = 'https://orders.example'
const PAYMENTS = 'https://payments.example'
const CART = 'https://cart.example'

const gateway = await startTestGateway({ database: 'pglite', listen: true })
t.teardown(() => gateway.close())
const gatewayUrl = gateway.config.publicUrl
const { prisma } = gateway.database

// The operator's setup: a role for shoppers, and a client for the cart service.
const roles = new RoleDirectory(prisma, new AuditLog(gateway.database, { warn: () => {} }))
await roles.create('shopper')
await roles.grant('shopper', ORDERS, ['read:order', 'write:order'])
await roles.grant('shopper', CART, ['cart:checkout'])
const clients = new ClientDirectory(prisma)
const cartClient = await clients.create('cart service')
await clients.grant(cartClient.clientId, PAYMENTS, ['payment:charge'])

const sessions = await connectSessionRedis(gateway.testRedis.url)
t.teardown(() => sessions.disconnect())
async function listening(app: FastifyInstance): Promise<string> {
  t.teardown(() => app.close())
  return app.listen({ port: 0, host: '127.0.0.1' })
}
const orderUrl = await listening(await buildOrderService({ gatewayUrl, resource: ORDERS, sessions }))
const paymentUrl = await listening(await buildPaymentService({ gatewayUrl, resource: PAYMENTS }))
const cartUrl = await listening(
  await buildCartService({
    gatewayUrl,
    resource: CART,
    client: { id: cartClient.clientId, secret: cartClient.clientSecret },
    payments: { url: paymentUrl, resource: PAYMENTS },
  }),
)

/** A native app's login for one resource: the access token is for that API only. */
async function tokensFor(sub: string, resource: string) {
  const credential = await nativeAppAuthorization(gateway, { sub, name: sub })
  const login = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { ...credential, resource } })
  if (login.statusCode !== 200) throw new Error(`login: ${login.statusCode} ${login.body}`)
  return login.json() as { accessToken: string; refreshToken: string; user: { id: string } }
}

const call = (url: string, token: string, method = 'GET', body?: unknown) =>
  fetch(url, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined })

const shopper = (await loginWithGoogle(gateway, { sub: 'shopper', name: 'shopper' })).json()
await roles.assign(shopper.user.id, 'shopper', 'operator')

t.test('a shopper reads and places orders with a token for the order service', async (t) => {
  const { accessToken } = await tokensFor('shopper', ORDERS)
  t.equal((await call(`${orderUrl}/orders`, accessToken)).status, 200)
  const placed = await call(`${orderUrl}/orders`, accessToken, 'POST', { item: 'kimchi' })
  t.equal(placed.status, 201)
  t.match(await placed.json(), { owner: shopper.user.id, item: 'kimchi' })

  const stranger = await tokensFor('stranger', ORDERS)
  const refused = await call(`${orderUrl}/orders`, stranger.accessToken)
  t.equal(refused.status, 403, 'a user without the role has no order scope')
  t.match(refused.headers.get('www-authenticate'), /insufficient_scope/)
  t.equal((await call(`${paymentUrl}/charges`, accessToken, 'POST', { amount: 1 })).status, 401, 'the payment service refuses a token made for orders')
})

t.test('checkout: the cart charges the payment service as itself', async (t) => {
  const { accessToken } = await tokensFor('shopper', CART)
  const checkout = await call(`${cartUrl}/checkout`, accessToken, 'POST', { amount: 12_000 })
  t.equal(checkout.status, 201)
  t.match(await checkout.json(), { buyer: shopper.user.id, charge: { amount: 12_000, chargedBy: cartClient.clientId } })
  const second = await call(`${cartUrl}/checkout`, accessToken, 'POST', { amount: 500 })
  t.equal(second.status, 201, 'the cached service token is reused')
})

t.test('logging out takes effect at the order service at once', async (t) => {
  const { accessToken, refreshToken } = await tokensFor('shopper', ORDERS)
  t.equal((await call(`${orderUrl}/orders`, accessToken)).status, 200)
  await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } })
  t.equal((await call(`${orderUrl}/orders`, accessToken)).status, 401)
})

t.test("an operator's forced logout, racing refreshes on both sides of it, is seen by the order service at once and leaves no live refresh token", async (t) => {
  const ops = await clients.create('ops')
  await clients.grant(ops.clientId, gateway.config.tokenAudience, ['admin'])
  const issued = await fetch(`${gatewayUrl}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${ops.clientId}:${ops.clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=admin',
  })
  const adminToken = ((await issued.json()) as { access_token: string }).access_token

  const devices = await Promise.all(Array.from({ length: 5 }, () => tokensFor('shopper', ORDERS)))
  t.equal((await call(`${orderUrl}/orders`, devices[0]!.accessToken)).status, 200)
  const refreshTokens = devices.map((device) => device.refreshToken)
  // Waves of ten refreshes, each on the tokens the last wave returned, from the moment the
  // forced logout is sent until it has answered, then one wave more.
  let settled = false
  const forced = call(`${gatewayUrl}/admin/users/${shopper.user.id}/logout`, adminToken, 'POST').finally(() => (settled = true))
  const everIssued = [...refreshTokens]
  let current = [...refreshTokens]
  let won = 0
  let refused = 0
  for (let last = false; !last; ) {
    last = settled
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: current[i % current.length] } })),
    )
    const successes = answers.filter((answer) => answer.statusCode === 200).map((answer) => answer.json().refreshToken as string)
    won += successes.length
    refused += answers.filter((answer) => answer.statusCode === 401).length
    everIssued.push(...successes)
    if (successes.length > 0) current = [...new Set(successes)]
  }
  t.equal((await forced).status, 204)
  t.ok(won > 0, `refreshes won while the forced logout was on its way (${won})`)
  t.ok(refused > 0, `and refreshes after it were refused (${refused})`)
  const afterwards = await Promise.all([...new Set(everIssued)].map((refreshToken) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })))
  t.same(afterwards.filter((answer) => answer.statusCode !== 401).length, 0, 'no refresh token survives the forced logout')
  for (const device of devices) t.equal((await call(`${orderUrl}/orders`, device.accessToken)).status, 401, 'the order service refuses every device at once')
})
