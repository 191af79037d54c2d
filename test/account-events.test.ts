// Account events reach the app (WEBHOOK_URL): every change of an account's life is
// delivered, signed as Standard Webhooks sign (checked by the standardwebhooks library, not
// by our code), at least once and with the same webhook-id on every retry; an event written
// by an instance that died before delivering it is delivered by the next one; two instances
// deliver each event once; without WEBHOOK_URL nothing is written at all.

import { randomBytes, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startGoogleEmulator } from '../emulators/google.js'
import { AppUsers, startAccountEventsReceiver } from '../examples/account-events-receiver.js'
import { GOOGLE_CLIENT, PUBLIC_URL, REDIRECT_URI, startTestGateway, type GatewayUnderTest } from './support/gateway.js'
import { createTestDatabase } from './support/postgres.js'
import { until } from './support/until.js'
import { startWebhookReceiver, type Delivery } from './support/webhook-receiver.js'

const SECRET = `whsec_${randomBytes(32).toString('base64')}`
const receiver = await startWebhookReceiver(SECRET)
const WORK = { clientId: 'work-client', clientSecret: 'work-secret' }
const work = await startGoogleEmulator({ ...WORK, redirectUris: [REDIRECT_URI, `${PUBLIC_URL}/auth/callback/work`] })
const workEnv = { OIDC_WORK_ISSUER: work.issuer, OIDC_WORK_CLIENT_ID: WORK.clientId, OIDC_WORK_CLIENT_SECRET: WORK.clientSecret }
const webhookEnv = (url = receiver.url) => ({ WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET, JOB_RETRY_DELAY_MS: '50', REFRESH_REUSE_GRACE: '0', ...workEnv })
const gateway = await startTestGateway({ database: 'pglite', env: webhookEnv() })
t.teardown(async () => {
  await gateway.close()
  await Promise.all([receiver.stop(), work.stop()])
})
const { app } = gateway
const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })

/** A fresh ID token from the provider's native SDK. */
async function idToken(at: GatewayUnderTest, provider: 'google' | 'work', sub: string): Promise<string> {
  const emulator = provider === 'google' ? at.google : work
  const now = Math.floor(Date.now() / 1000)
  const aud = provider === 'google' ? GOOGLE_CLIENT.clientId : WORK.clientId
  return emulator.signIdToken({ iss: emulator.issuer, aud, sub, iat: now, exp: now + 600, jti: randomUUID(), name: `User ${sub}`, email: `${sub}@example.com`, email_verified: true })
}

async function signIn(at: GatewayUnderTest, sub: string) {
  const response = await at.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken: await idToken(at, 'google', sub) } })
  if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode} ${response.body}`)
  const body = response.json()
  return { userId: body.user.id as string, accessToken: body.accessToken as string, refreshToken: body.refreshToken as string }
}

const eventOf = (type: string, userId: string) => (delivery: Delivery) => delivery.type === type && delivery.data?.userId === userId

t.test("an account's whole life reaches the app, each event signed and without personal data", async (t) => {
  const user = await signIn(gateway, `life-${randomUUID()}`)
  const created = await receiver.waitFor(eventOf('user.created', user.userId))
  t.match(created, { verified: true, status: 204, id: /^msg_[\w-]+$/, data: { userId: user.userId, provider: 'google', identityId: String } })
  t.match(JSON.parse(created.body), { type: 'user.created', timestamp: String, data: Object }, 'the body is { type, timestamp, data }')
  t.ok(Math.abs(created.timestamp - Date.now() / 1000) < 60, 'webhook-timestamp is the time of the attempt')

  const linked = await app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(user.accessToken), payload: { provider: 'work', idToken: await idToken(gateway, 'work', `w-${user.userId}`) } })
  t.equal(linked.statusCode, 201)
  const workIdentity = (linked.json().identities as { id: string; provider: string }[]).find((identity) => identity.provider === 'work')!
  t.match(await receiver.waitFor(eventOf('identity.linked', user.userId)), { verified: true, data: { identityId: workIdentity.id, provider: 'work' } })

  t.equal((await app.inject({ method: 'DELETE', url: `/auth/identities/${workIdentity.id}`, headers: bearer(user.accessToken) })).statusCode, 204)
  t.match(await receiver.waitFor(eventOf('identity.unlinked', user.userId)), { verified: true, data: { identityId: workIdentity.id, provider: 'work', by: 'user' } })

  t.equal((await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(user.accessToken) })).statusCode, 204)
  t.match(await receiver.waitFor(eventOf('sessions.revoked', user.userId)), { verified: true, data: { reason: 'logout_all' } })

  // A stolen refresh token used after its owner rotated it: the session family ends, and the app hears why.
  const googleSubject = (await gateway.database.prisma.identity.findFirstOrThrow({ where: { user: { publicId: user.userId } } })).subject
  const again = await signIn(gateway, googleSubject)
  const rotated = await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: again.refreshToken } })
  t.equal(rotated.statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: again.refreshToken } })).statusCode, 401)
  await receiver.waitFor((delivery) => eventOf('sessions.revoked', user.userId)(delivery) && delivery.data.reason === 'refresh_token_reuse')

  const fresh = await signIn(gateway, googleSubject)
  t.equal((await app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(fresh.accessToken) })).statusCode, 204)
  t.match(await receiver.waitFor(eventOf('user.deleted', user.userId)), { verified: true, data: { userId: user.userId, by: 'user' } })

  const mine = receiver.deliveries.filter((delivery) => delivery.data?.userId === user.userId)
  t.same(
    mine.map((delivery) => delivery.type),
    ['user.created', 'identity.linked', 'identity.unlinked', 'sessions.revoked', 'sessions.revoked', 'user.deleted'],
    'one event per change, in order',
  )
  t.equal(new Set(mine.map((delivery) => delivery.id)).size, mine.length, 'each event has its own webhook-id')
  for (const delivery of mine) t.notMatch(delivery.body, /@|User /, `${delivery.type} carries no email or name`)
})

t.test('a receiver that answers 500 gets the same event again, with the same webhook-id, until it takes it', async (t) => {
  receiver.failNext(2, 500)
  const user = await signIn(gateway, `retry-${randomUUID()}`)
  const delivered = await receiver.waitFor((delivery) => eventOf('user.created', user.userId)(delivery) && delivery.status === 204)
  const attempts = receiver.deliveries.filter(eventOf('user.created', user.userId))
  t.same(attempts.map((attempt) => attempt.status), [500, 500, 204], 'two refusals, then the delivery')
  t.same(new Set(attempts.map((attempt) => attempt.id)), new Set([delivered.id]), 'one webhook-id for all three')
  t.ok(attempts.every((attempt) => attempt.verified), 'each retry is signed anew and verifies')
  // The worker records the outcome just after the receiver answered.
  const jobTrail = () => gateway.database.prisma.auditEvent.findMany({ where: { userId: user.userId, action: { startsWith: 'job.' } }, orderBy: { id: 'asc' } })
  const trail = await until('the delivery to be audited', async () => {
    const rows = await jobTrail()
    return rows.length >= 3 && rows
  }).catch(jobTrail)
  t.same(trail.map((row) => [row.action, row.outcome]), [['job.failed', 'failed'], ['job.failed', 'failed'], ['job.delivered', 'success']], 'every outcome is in the audit trail')
  t.match(trail[0]!.detail, /user\.created .*HTTP 500/)
  t.equal(await gateway.database.prisma.job.count({ where: { kind: 'account.event' } }), 0, 'the delivered job is gone')
})

t.test('the example receiver verifies with standardwebhooks and keeps the app in step', async (t) => {
  const users = new AppUsers()
  const example = await startAccountEventsReceiver({ WEBHOOK_SECRET: SECRET, PORT: '0' }, { users })
  const viaExample = await startTestGateway({ database: 'pglite', env: webhookEnv(example.url) })
  t.teardown(async () => {
    await viaExample.close()
    await example.app.close()
  })
  const user = await signIn(viaExample, `example-${randomUUID()}`)
  await until('the app to know the new user', () => users.profiles.has(user.userId))
  t.equal((await viaExample.app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(user.accessToken) })).statusCode, 204)
  await until('the app to forget the deleted user', () => !users.profiles.has(user.userId))
  t.pass('created and deleted in the app as in the gateway')
})

t.test('without WEBHOOK_URL no event is written', async (t) => {
  const silent = await startTestGateway({ database: 'pglite' })
  t.teardown(() => silent.close())
  const user = await signIn(silent, `silent-${randomUUID()}`)
  await silent.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(user.accessToken) })
  t.equal(await silent.database.prisma.job.count({ where: { kind: 'account.event' } }), 0)
})

t.test('on one PostgreSQL database: an instance stopped before delivering leaves its events to the next, and two instances deliver each once', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  // This instance writes events but delivers none (JOB_CONCURRENCY=0), then stops: the rows are all that is left.
  const first = await startTestGateway({ databaseUrl: database.url, env: { ...webhookEnv(), JOB_CONCURRENCY: '0' } })
  const early = await signIn(first, `early-${randomUUID()}`)
  await first.close()
  t.equal(receiver.deliveries.filter(eventOf('user.created', early.userId)).length, 0, 'nothing was delivered before the stop')

  const [a, b] = await Promise.all([
    startTestGateway({ databaseUrl: database.url, env: webhookEnv() }),
    startTestGateway({ databaseUrl: database.url, env: webhookEnv() }),
  ])
  t.teardown(() => Promise.all([a.close(), b.close()]))
  t.match(await receiver.waitFor(eventOf('user.created', early.userId)), { verified: true }, 'the event written before the stop is delivered after it')
  const users = await Promise.all(Array.from({ length: 20 }, (_, n) => signIn(n % 2 ? a : b, `pair-${n}-${randomUUID()}`)))
  for (const user of users) await receiver.waitFor(eventOf('user.created', user.userId))
  await sleep(300)
  const ids = receiver.deliveries.filter((delivery) => users.some((user) => eventOf('user.created', user.userId)(delivery))).map((delivery) => delivery.id)
  t.equal(ids.length, 20, 'twenty events, twenty deliveries')
  t.equal(new Set(ids).size, 20, 'none delivered twice')
})

