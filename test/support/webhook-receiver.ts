// The app's end of the account events, for tests: a server on loopback that records every
// delivery, checks its Standard Webhooks signature with the reference library
// (standardwebhooks, not our own code) and answers as told, so that a test can watch the
// gateway's deliveries, retries and signatures.
//
//   const receiver = await startWebhookReceiver(secret)   // WEBHOOK_URL = receiver.url
//   receiver.failNext(2)                                  // the next two deliveries get 500
//   const created = await receiver.waitFor((d) => d.type === 'user.created' && d.verified)
//   await receiver.stop()
//
// Answers: 401 to a delivery whose signature does not verify (wrong key, changed body, a
// missing header, a timestamp more than 5 minutes off); otherwise the status set by
// `failNext` while it lasts, else 204. Every POST to the URL is recorded, whatever its answer.

import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

export interface Delivery {
  /** `webhook-id` ('' when missing). */
  id: string
  /** `webhook-timestamp`: Unix seconds of this attempt (NaN when missing). */
  timestamp: number
  /** The body's `type` ('' when the body is not an event). */
  type: string
  /** The body's `data`. */
  data: any
  /** The raw body, as received. */
  body: string
  /** Whether standardwebhooks verified the signature over the raw body. */
  verified: boolean
  /** What the receiver answered. */
  status: number
}

export interface WebhookReceiver {
  /** Where to send the events: WEBHOOK_URL. */
  url: string
  /** Every delivery so far, in the order they arrived. */
  deliveries: Delivery[]
  /** The first delivery, already received or still to come, that matches; rejects after `timeoutMs` (5000) saying what arrived. */
  waitFor(predicate: (delivery: Delivery) => boolean, timeoutMs?: number): Promise<Delivery>
  /** The next `times` verified deliveries are recorded and answered `status` (500) instead of 204. */
  failNext(times: number, status?: number): void
  stop(): Promise<void>
}

const PATH = '/events'

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const webhook = new Webhook(secret)
  const deliveries: Delivery[] = []
  /** Requests that were not a POST to the URL: told when `waitFor` times out. */
  const strays: string[] = []
  /** Each pending `waitFor`: checked on every request, and rejected by `stop()`. */
  const waiters = new Set<() => void>()
  const stopWaiters = new Set<() => void>()
  let failures: { times: number; status: number } = { times: 0, status: 500 }

  const server = createServer(async (request, response) => {
    const raw = await readBody(request)
    if (request.method !== 'POST' || request.url !== PATH) {
      strays.push(`${request.method} ${request.url}`)
      response.writeHead(404).end()
      for (const wake of waiters) wake()
      return
    }
    const header = (name: string) => String(request.headers[name] ?? '')
    let verified = true
    try {
      webhook.verify(raw, { 'webhook-id': header('webhook-id'), 'webhook-timestamp': header('webhook-timestamp'), 'webhook-signature': header('webhook-signature') }, { jsonParse: false })
    } catch {
      verified = false
    }
    let status = 204
    if (!verified) status = 401
    else if (failures.times > 0) {
      failures.times -= 1
      status = failures.status
    }
    const body = raw.toString('utf8')
    const event = parseEvent(body)
    deliveries.push({
      id: header('webhook-id'),
      timestamp: request.headers['webhook-timestamp'] === undefined ? NaN : Number(header('webhook-timestamp')),
      type: event.type,
      data: event.data,
      body,
      verified,
      status,
    })
    response.writeHead(status).end()
    for (const wake of waiters) wake()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}${PATH}`,
    deliveries,
    waitFor(predicate, timeoutMs = 5000) {
      return new Promise<Delivery>((resolve, reject) => {
        const check = () => {
          const found = deliveries.find(predicate)
          if (!found) return false
          finish()
          resolve(found)
          return true
        }
        const timer = setTimeout(() => {
          finish()
          reject(new Error(`no delivery matched (${predicate.toString()}) within ${timeoutMs} ms; ${describe(deliveries, strays)}`))
        }, timeoutMs)
        const stopped = () => {
          finish()
          reject(new Error(`the webhook receiver stopped before a delivery matched; ${describe(deliveries, strays)}`))
        }
        const wake = () => void check()
        const finish = () => {
          clearTimeout(timer)
          waiters.delete(wake)
          stopWaiters.delete(stopped)
        }
        waiters.add(wake)
        stopWaiters.add(stopped)
        check()
      })
    },
    failNext(times, status = 500) {
      failures = { times, status }
    },
    async stop() {
      for (const stopped of [...stopWaiters]) stopped()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections() // fetch keeps connections alive
      })
    },
  }
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => resolve(Buffer.concat(chunks)))
    request.on('error', reject)
  })
}

function parseEvent(body: string): { type: string; data: any } {
  try {
    const event = JSON.parse(body)
    return { type: typeof event?.type === 'string' ? event.type : '', data: event?.data }
  } catch {
    return { type: '', data: undefined }
  }
}

function describe(deliveries: Delivery[], strays: string[]): string {
  const arrived = deliveries.map((d) => `${d.type || '(no type)'} ${d.id || '(no id)'} verified=${d.verified} answered ${d.status} data=${JSON.stringify(d.data)}`)
  const lines = [`${deliveries.length} arrived${deliveries.length ? ':' : ''}`, ...arrived.map((line) => `  ${line}`)]
  if (strays.length) lines.push(`and requests elsewhere: ${strays.join(', ')}`)
  return lines.join('\n')
}
