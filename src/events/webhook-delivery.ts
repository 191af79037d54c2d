// Delivers an account event to the app's WEBHOOK_URL the Standard Webhooks way
// (standardwebhooks.com): `webhook-id` (the same on every retry, so the app can drop
// duplicates), `webhook-timestamp` (this attempt, so a receiver can refuse old replays) and
// `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. The signature is
// five lines of node:crypto on purpose: the example receiver checks it with the
// standardwebhooks library, so the format is proved by code we did not write.

import { createHmac } from 'node:crypto'
import type { JobHandler } from '../jobs/job-worker.js'
import type { AccountEvent } from './account-events.js'

export interface WebhookTarget {
  url: string
  /** The key inside WEBHOOK_SECRET (`whsec_<base64>`). */
  key: Buffer
}

/** A receiver that has not answered by then is retried later. */
const DELIVERY_TIMEOUT_MS = 10_000

function signature(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`
}

export function webhookDelivery(target: WebhookTarget): JobHandler {
  return {
    describe: (event: AccountEvent) => ({ userId: event.data?.userId, what: `event ${event.type} ${event.id}` }),
    async run(event: AccountEvent, stop: AbortSignal): Promise<string> {
      const body = JSON.stringify({ type: event.type, timestamp: event.timestamp, data: event.data })
      const timestamp = Math.floor(Date.now() / 1000)
      let response: Response
      try {
        response = await fetch(target.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'webhook-id': event.id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signature(target.key, event.id, timestamp, body),
          },
          body,
          // A redirect would carry the signed event somewhere nobody configured.
          redirect: 'manual',
          signal: AbortSignal.any([stop, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]),
        })
      } catch (error) {
        // The URL is the operator's and may hold a token: only the kind of failure is told.
        const timedOut = (error as Error).name === 'TimeoutError'
        throw new Error(timedOut ? `the webhook receiver did not answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : 'the webhook receiver could not be reached')
      }
      await response.body?.cancel().catch(() => {})
      if (response.status < 200 || response.status > 299) throw new Error(`the webhook receiver answered HTTP ${response.status}`)
      return `delivered (HTTP ${response.status})`
    },
  }
}
