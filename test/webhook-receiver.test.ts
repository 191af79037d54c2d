// The app's end of the account events: the test receiver (test/support/webhook-receiver.ts)
// and the example receiver (examples/account-events-receiver.ts), both checking signatures
// with the standardwebhooks library, against messages signed here with node:crypto exactly
// as the Standard Webhooks spec says: `webhook-signature: v1,<base64 HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the base64 part of `whsec_...`.
// So each side is checked by code the other did not share.

import { createHmac, randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { AppUsers, buildAccountEventsReceiver, startAccountEventsReceiver, type AccountEvent } from '../examples/account-events-receiver.js'
import { startWebhookReceiver, type Delivery } from './support/webhook-receiver.js'

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`
const SECRET = newSecret()
const now = () => Math.floor(Date.now() / 1000)
const newId = () => `msg_${randomBytes(12).toString('base64url')}`

function signature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64')
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`
}

const eventBody = (type: string, data: Record<string, unknown>, timestamp = new Date().toISOString()) => JSON.stringify({ type, timestamp, data })

interface Message {
  id?: string
  timestamp?: number
  body?: string
  /** What the signature is computed over, when it differs from what is sent. */
  signedBody?: string
  /** The id signed, when it differs from the one sent. */
  signedId?: string
  secret?: string
  /** Replaces the computed signature header. */
  signatureHeader?: (computed: string) => string
  /** Headers left out. */
  omit?: string[]
}

/** Sends one signed delivery as the gateway would; returns the status and the id sent. */
async function deliver(url: string, message: Message = {}): Promise<{ status: number; id: string }> {
  const id = message.id ?? newId()
  const timestamp = message.timestamp ?? now()
  const body = message.body ?? eventBody('user.created', { userId: `user-${randomBytes(4).toString('hex')}` })
  const computed = signature(message.secret ?? SECRET, message.signedId ?? id, timestamp, message.signedBody ?? body)
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': message.signatureHeader ? message.signatureHeader(computed) : computed,
  }
  for (const name of message.omit ?? []) delete headers[name]
  const response = await fetch(url, { method: 'POST', headers, body })
  await response.arrayBuffer()
  return { status: response.status, id }
}

// The two receivers under test, with what each tells of a delivery.
const helper = await startWebhookReceiver(SECRET)
t.teardown(() => helper.stop())

const users = new AppUsers()
const handled: AccountEvent[] = []
/** The ids onEvent was called with, before it waits for `gate`. */
const entered: string[] = []
let failHandling = 0
let gate: Promise<void> | undefined
const example = await startAccountEventsReceiver(
  { WEBHOOK_SECRET: SECRET, PORT: '0' },
  {
    users,
    onEvent: async (event) => {
      entered.push(event.id)
      if (gate) await gate
      if (failHandling > 0) {
        failHandling -= 1
        throw new Error('the app database is down')
      }
      handled.push(event)
    },
  },
)
t.teardown(() => example.app.close())

const timesHandled = (id: string) => handled.filter((event) => event.id === id).length
const deliveryOf = (id: string) => helper.deliveries.find((delivery) => delivery.id === id)

const receivers = [
  {
    name: 'the test receiver',
    url: helper.url,
    accepted: (t: Test, id: string) => t.match(deliveryOf(id), { verified: true, status: 204 }, 'recorded as verified'),
    refused: (t: Test, id: string) => t.match(deliveryOf(id), { verified: false, status: 401 }, 'recorded as not verified'),
  },
  {
    name: 'the example receiver',
    url: example.url,
    accepted: (t: Test, id: string) => t.equal(timesHandled(id), 1, 'handled'),
    refused: (t: Test, id: string) => t.equal(timesHandled(id), 0, 'not handled'),
  },
]

for (const receiver of receivers) {
  t.test(`${receiver.name} accepts a delivery signed as the spec says`, async (t) => {
    const plain = await deliver(receiver.url)
    t.equal(plain.status, 204)
    receiver.accepted(t, plain.id)

    // What was signed is the raw body: spacing, key order and escapes that JSON.parse +
    // JSON.stringify would change must verify as sent.
    const raw = '{\n  "data": {"userId": "caf\\u00e9-1", "provider": "kakao"},\n  "type":  "identity.linked",\n  "timestamp": "2026-01-01T00:00:00.000Z"\n}'
    t.not(JSON.stringify(JSON.parse(raw)), raw, 'the body would change if parsed and serialised again')
    const verbatim = await deliver(receiver.url, { body: raw })
    t.equal(verbatim.status, 204, 'the raw body, not re-serialised JSON, is verified')
    receiver.accepted(t, verbatim.id)

    // Several signatures (a key being rotated): one that matches is enough.
    const rotated = await deliver(receiver.url, { signatureHeader: (computed) => `v1,${randomBytes(32).toString('base64')} ${computed}` })
    t.equal(rotated.status, 204, 'one matching signature among several')
    receiver.accepted(t, rotated.id)
  })

  t.test(`${receiver.name} refuses a delivery whose signature does not hold`, async (t) => {
    const cases: [string, Message][] = [
      ['a body changed after signing', { signedBody: eventBody('user.created', { userId: 'alice' }), body: eventBody('user.created', { userId: 'mallory' }) }],
      ['a body signed with another secret', { secret: newSecret() }],
      ['a timestamp 10 minutes old (a replay)', { timestamp: now() - 600 }],
      ['a timestamp 10 minutes ahead', { timestamp: now() + 600 }],
      ['a signature over another webhook-id', { signedId: newId() }],
      ['a signature without its version', { signatureHeader: (computed) => computed.slice('v1,'.length) }],
      ['no signature', { omit: ['webhook-signature'] }],
      ['no timestamp', { omit: ['webhook-timestamp'] }],
    ]
    for (const [what, message] of cases) {
      const { status, id } = await deliver(receiver.url, message)
      t.equal(status, 401, `${what}: 401`)
      receiver.refused(t, id)
    }
  })
}

t.test('the test receiver records each delivery as received', async (t) => {
  const timestamp = now()
  const body = eventBody('user.deleted', { userId: 'u-1', by: 'operator' })
  const { id } = await deliver(helper.url, { timestamp, body })
  t.same(deliveryOf(id), { id, timestamp, type: 'user.deleted', data: { userId: 'u-1', by: 'operator' }, body, verified: true, status: 204 } satisfies Delivery)
})

t.test('failNext: the next deliveries are answered 500 (or the status given) and recorded, then 204 again', async (t) => {
  const id = newId()
  helper.failNext(2)
  t.equal((await deliver(helper.url, { id })).status, 500)
  t.equal((await deliver(helper.url, { id })).status, 500)
  t.equal((await deliver(helper.url, { id })).status, 204, 'recovers')
  t.same(
    helper.deliveries.filter((delivery) => delivery.id === id).map((delivery) => [delivery.status, delivery.verified]),
    [[500, true], [500, true], [204, true]],
    'every attempt is recorded, verified',
  )

  helper.failNext(1, 503)
  t.equal((await deliver(helper.url, { secret: newSecret() })).status, 401, 'a bad signature is refused and does not use up a failure')
  t.equal((await deliver(helper.url)).status, 503)
  t.equal((await deliver(helper.url)).status, 204)
})

t.test('waitFor: a delivery already there or still to come; a clear failure when none comes', async (t) => {
  const earlier = await deliver(helper.url, { body: eventBody('sessions.revoked', { userId: 'u-2', reason: 'logout_all' }) })
  t.equal((await helper.waitFor((d) => d.id === earlier.id)).type, 'sessions.revoked', 'already received')

  const id = newId()
  const waiting = helper.waitFor((d) => d.id === id && d.status === 204)
  helper.failNext(1)
  await deliver(helper.url, { id })
  await deliver(helper.url, { id })
  t.match(await waiting, { id, status: 204, verified: true }, 'the retry that was accepted')

  const error: Error = await helper.waitFor((d) => d.type === 'never.sent', 200).then(
    () => {
      throw new Error('resolved')
    },
    (error: Error) => error,
  )
  t.match(error.message, /no delivery matched .*never\.sent.* within 200 ms/)
  t.match(error.message, new RegExp(`sessions\\.revoked ${earlier.id} verified=true answered 204`), 'lists what arrived')
})

t.test('stop: pending waits are rejected and the port is closed', async (t) => {
  const receiver = await startWebhookReceiver(SECRET)
  const pending = receiver.waitFor(() => false, 10_000)
  await deliver(receiver.url) // a kept-alive connection must not hold stop() up
  await receiver.stop()
  await t.rejects(pending, /stopped before a delivery matched/)
  await t.rejects(fetch(receiver.url, { method: 'POST', body: '{}' }))
})

t.test('the example does what the app does for each event', async (t) => {
  const userId = `user-${randomBytes(4).toString('hex')}`
  users.sessions.set(userId, new Set(['app-session-1']))
  t.equal((await deliver(example.url, { body: eventBody('user.created', { userId }) })).status, 204)
  t.ok(users.profiles.has(userId), 'user.created: a profile')
  await deliver(example.url, { body: eventBody('identity.linked', { userId, provider: 'naver', identityId: 'i-1' }) })
  t.same([...users.profiles.get(userId)!.providers], ['naver'], 'identity.linked')
  await deliver(example.url, { body: eventBody('sessions.revoked', { userId, reason: 'forced_logout' }) })
  t.notOk(users.sessions.has(userId), "sessions.revoked: the app's own sessions end")
  await deliver(example.url, { body: eventBody('identity.unlinked', { userId, provider: 'naver' }) })
  t.same([...users.profiles.get(userId)!.providers], [], 'identity.unlinked')
  await deliver(example.url, { body: eventBody('user.deleted', { userId, by: 'user' }) })
  t.notOk(users.profiles.has(userId), "user.deleted: the app's data about the user is gone")

  const unknown = await deliver(example.url, { body: eventBody('user.renamed.someday', { userId }) })
  t.equal(unknown.status, 204, 'an event type it does not know is acknowledged')
})

t.test('the example handles an event once, however often it is delivered', async (t) => {
  const userId = `user-${randomBytes(4).toString('hex')}`
  const body = eventBody('user.created', { userId })
  const first = await deliver(example.url, { body })
  // The gateway's retry: the same webhook-id and body, a new timestamp and signature.
  const again = await deliver(example.url, { id: first.id, body, timestamp: now() + 1 })
  t.equal(first.status, 204)
  t.equal(again.status, 204, 'the duplicate is acknowledged')
  t.equal(timesHandled(first.id), 1, 'and not handled a second time')

  const other = await deliver(example.url, { body })
  t.equal(timesHandled(other.id), 1, 'the same body under another webhook-id is another event')
})

t.test('the example answers 500 when handling fails, and handles the retry', async (t) => {
  failHandling = 1
  const first = await deliver(example.url)
  t.equal(first.status, 500, 'the gateway will try again')
  const retry = await deliver(example.url, { id: first.id })
  t.equal(retry.status, 204)
  t.equal(timesHandled(first.id), 1, 'the retry is handled: a failed id is not remembered')
})

t.test('a duplicate that arrives while the first is being handled gets the same answer', async (t) => {
  let release!: () => void
  gate = new Promise((resolve) => (release = resolve))
  const id = newId()
  const answered: string[] = []
  const first = deliver(example.url, { id }).then((result) => (answered.push('first'), result))
  while (!entered.includes(id)) await new Promise((resolve) => setTimeout(resolve, 5))
  const duplicate = deliver(example.url, { id }).then((result) => (answered.push('duplicate'), result))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(answered, [], 'the duplicate waits for the first')
  failHandling = 1
  gate = undefined
  release()
  t.same([(await first).status, (await duplicate).status], [500, 500], 'both fail: the duplicate is not acknowledged for an event never handled')
  t.equal((await deliver(example.url, { id })).status, 204, 'the next retry is handled')
  t.equal(timesHandled(id), 1)
})

t.test('the example remembers a bounded number of ids, the oldest forgotten first', async (t) => {
  const seen: string[] = []
  const app = buildAccountEventsReceiver({ secret: SECRET, maxRememberedIds: 2, onEvent: (event) => void seen.push(event.id) })
  t.teardown(() => app.close())
  const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/events`
  const ids = [newId(), newId(), newId()]
  for (const id of ids) await deliver(url, { id })
  await deliver(url, { id: ids[2] })
  t.same(seen, ids, 'the latest is remembered')
  await deliver(url, { id: ids[0] })
  t.same(seen, [...ids, ids[0]], 'the oldest was forgotten')
})

t.test('the example refuses a signed body that is not an event', async (t) => {
  t.equal((await deliver(example.url, { body: 'not json' })).status, 400)
  t.equal((await deliver(example.url, { body: '{"type":"user.created"}' })).status, 400)
})

t.test('the example needs WEBHOOK_SECRET', async (t) => {
  await t.rejects(startAccountEventsReceiver({ PORT: '0' }), /WEBHOOK_SECRET must be set/)
  t.throws(() => buildAccountEventsReceiver({ secret: 'whsec_' }), 'an empty key')
})
