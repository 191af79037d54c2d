// An app's receiver for the gateway's account events: a small Fastify server to copy into
// your app. The gateway POSTs each event as JSON `{ "type", "timestamp", "data" }`, signed
// the Standard Webhooks way (standardwebhooks.com); this receiver checks the signature with
// the reference library (`npm install standardwebhooks`), drops duplicates by `webhook-id`
// and does what the app does for each kind of event.
//
// Run it, then point the gateway at it (the same secret on both sides):
//
//   WEBHOOK_SECRET=whsec_$(openssl rand -base64 32) PORT=4000 node --import tsx examples/account-events-receiver.ts
//   # the gateway's environment:
//   WEBHOOK_URL=http://127.0.0.1:4000/events WEBHOOK_SECRET=whsec_...
//
// What a receiver must get right:
// - Verify the RAW body, byte for byte. JSON parsed and serialised again is not what was
//   signed (spacing, key order, escapes), so the body is read as bytes here, not parsed.
// - Answer 2xx only once the event is handled. Any other answer, or none within 10 s, and
//   the gateway sends the same event again later, with the same `webhook-id`.
// - Expect duplicates (delivery is at least once): remember the ids already handled.
// - Acknowledge event types you don't know (204): new ones may be added.

import Fastify, { type FastifyInstance } from 'fastify'
import { pathToFileURL } from 'node:url'
import { Webhook, WebhookVerificationError } from 'standardwebhooks'

/** One account event, as the gateway sends it, with its `webhook-id`. */
export interface AccountEvent {
  /** `webhook-id`: the same on every retry of this event. */
  id: string
  /** user.created, user.deleted, identity.linked, identity.unlinked, sessions.revoked, or one added later. */
  type: string
  /** When it happened (ISO 8601); deliveries may arrive out of order, this says which came first. */
  timestamp: string
  /** Ids only, never a name or an address: `userId`, and `provider`, `identityId`, `by` or `reason` where they apply. */
  data: { userId: string; provider?: string; identityId?: string; by?: string; reason?: string }
}

/** What the app keeps about the gateway's users: a stand-in for the app's own tables. */
export class AppUsers {
  /** The app's profile of each user, by the gateway's user id. */
  readonly profiles = new Map<string, { since: string; providers: Set<string> }>()
  /** The app's own sessions (its cookies, cached tokens), by user id. */
  readonly sessions = new Map<string, Set<string>>()
}

/** What an app typically does for each event. */
export async function applyAccountEvent(users: AppUsers, event: AccountEvent): Promise<void> {
  const { userId } = event.data
  switch (event.type) {
    case 'user.created':
      // Set up what the app keeps per user: a profile, default settings, a welcome mail.
      if (!users.profiles.has(userId)) users.profiles.set(userId, { since: event.timestamp, providers: new Set() })
      break
    case 'user.deleted':
      // The user is gone from the gateway (deleted their account, or an operator did):
      // delete everything the app keeps about them, as privacy law asks.
      users.profiles.delete(userId)
      users.sessions.delete(userId)
      break
    case 'identity.linked':
      // Another login (Kakao, Google, Naver) now leads to the same user: show it in the settings.
      if (event.data.provider) users.profiles.get(userId)?.providers.add(event.data.provider)
      break
    case 'identity.unlinked':
      if (event.data.provider) users.profiles.get(userId)?.providers.delete(event.data.provider)
      break
    case 'sessions.revoked':
      // Every login of the user has ended (logout everywhere, an operator, a stolen refresh
      // token): end the app's own sessions too and drop any token it cached for them.
      users.sessions.delete(userId)
      break
    default:
      // An event this app doesn't know (yet): acknowledge it, or it would come back forever.
      break
  }
}

export interface ReceiverOptions {
  /** WEBHOOK_SECRET, the same `whsec_...` as the gateway's. */
  secret: string
  /** The app's data; a new, empty one if left out. */
  users?: AppUsers
  /** Called once for each event handled, after `applyAccountEvent` (logging, metrics; the tests count with it). */
  onEvent?: (event: AccountEvent) => void | Promise<void>
  /** How many webhook-ids to remember for dropping duplicates. */
  maxRememberedIds?: number
}

export function buildAccountEventsReceiver({ secret, users = new AppUsers(), onEvent, maxRememberedIds = 10_000 }: ReceiverOptions): FastifyInstance {
  const webhook = new Webhook(secret) // throws at once on a secret that is not `whsec_<base64>`
  // The ids seen, with their handling: a duplicate that comes while the first is still being
  // handled waits for it and gets the same answer. In memory and bounded for an example (the
  // oldest ids are forgotten first, and all of them on a restart); a real app keeps the
  // handled ids in its database, in the same transaction as what the event changed.
  const seen = new Map<string, Promise<void>>()

  const app = Fastify({ logger: false })
  // In a plugin of its own so that only this route gets the body as raw bytes: the rest of
  // the app still gets parsed JSON.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

    scope.post('/events', async (request, reply) => {
      const header = (name: string) => String(request.headers[name] ?? '')
      let payload: unknown
      try {
        const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0) // no body at all: nothing to parse
        payload = webhook.verify(rawBody, {
          'webhook-id': header('webhook-id'),
          'webhook-timestamp': header('webhook-timestamp'),
          'webhook-signature': header('webhook-signature'),
        })
      } catch (error) {
        // A wrong signature, a missing header, or a timestamp more than 5 minutes off (a replay).
        if (error instanceof WebhookVerificationError) return reply.code(401).send({ error: 'invalid_signature' })
        return reply.code(400).send({ error: 'invalid_body' }) // signed, but not JSON
      }
      if (!isEvent(payload)) return reply.code(400).send({ error: 'invalid_event' })
      // Only now is the id trusted: it is part of what was signed.
      const event: AccountEvent = { id: header('webhook-id'), type: payload.type, timestamp: payload.timestamp, data: payload.data }

      let handling = seen.get(event.id)
      if (!handling) {
        handling = (async () => {
          await applyAccountEvent(users, event)
          await onEvent?.(event)
        })()
        seen.set(event.id, handling)
        if (seen.size > maxRememberedIds) seen.delete(seen.keys().next().value!)
        // Handling failed: forget the id, so that the gateway's retry is handled afresh.
        handling.catch(() => seen.get(event.id) === handling && seen.delete(event.id))
      }
      await handling // a failure answers 500, and the gateway tries again later
      return reply.code(204).send()
    })
  })
  return app
}

function isEvent(payload: unknown): payload is Omit<AccountEvent, 'id'> {
  const event = payload as AccountEvent | null
  return typeof event?.type === 'string' && typeof event.timestamp === 'string' && typeof event.data === 'object' && event.data !== null
}

/** Starts the receiver from the environment: WEBHOOK_SECRET (required) and PORT (default 4000; 0 for any free port). */
export async function startAccountEventsReceiver(env: NodeJS.ProcessEnv = process.env, options: Omit<ReceiverOptions, 'secret'> = {}) {
  const secret = env.WEBHOOK_SECRET
  if (!secret?.startsWith('whsec_')) throw new Error('WEBHOOK_SECRET must be set to the gateway\'s secret (whsec_...)')
  const app = buildAccountEventsReceiver({ ...options, secret })
  const address = await app.listen({ host: '127.0.0.1', port: Number(env.PORT ?? 4000) })
  return { app, url: `${address}/events` }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await startAccountEventsReceiver()
  console.log(`account events receiver: WEBHOOK_URL=${url}`)
}
