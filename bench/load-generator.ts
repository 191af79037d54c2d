// The load generator of the benchmarks (started by `measure` in bench/harness.ts), in a
// child process of its own so that building requests and parsing responses does not run
// on the event loop of the servers measured.
// It receives one LoadJob over IPC, answers with one LoadReport, and exits.
//
// Each autocannon connection owns one slot. For the gateway a slot is one refresh
// session: the connection sends the slot's current refresh token and stores the
// successor from every 2xx answer (rotation makes each token single-use). autocannon
// resets its per-connection `context` to `initialContext` whenever it loops back to the
// first request, i.e. before every request when there is only one, so the token cannot
// live in `context`; setupClient binds each connection's setupRequest/onResponse hooks
// to its own slot instead.

import { createRequire } from 'node:module'

export interface LoadJob {
  url: string
  path: string
  connections: number
  /** Unmeasured run first, so both servers are measured with a warm JIT. */
  warmupSeconds: number
  seconds: number
  /** One body per connection to start with. */
  tokens: string[]
  /** Take the successor refresh token from each 2xx answer (the gateway); otherwise the body is fixed. */
  rotate: boolean
}

export interface RunFigures {
  requestsPerSecond: number
  total: number
  ok: number
  non2xx: number
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  latencyP50: number
  latencyP99: number
  latencyMean: number
  latencyMax: number
  durationSeconds: number
}

export interface LoadReport {
  warmup?: RunFigures
  measured: RunFigures
  /** The last token each connection holds (for the gateway: the live token of its session). */
  tokens: string[]
  /** The first failed answers, to say why a run failed. */
  failureSamples: string[]
  /** CPU time of the load generator during the measured run, µs. */
  measuredCpuMicros: number
}

// autocannon ships no type declarations: just what this file uses.
interface Client {
  setRequests(requests: Request[]): void
}
interface Request {
  method: string
  path: string
  headers: Record<string, string>
  body?: string
  setupRequest?: (request: Request, context: object) => Request
  onResponse?: (status: number, body: string, context: object) => void
}
interface Result {
  requests: { average: number; total: number }
  latency: { p50: number; p99: number; mean: number; max: number }
  '2xx': number
  non2xx: number
  errors: number
  timeouts: number
  duration: number
  statusCodeStats: Record<string, { count: number }>
}
type Autocannon = (options: Record<string, unknown>) => PromiseLike<Result>
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

const failureSamples: string[] = []

async function run(job: LoadJob, slots: { token: string }[], seconds: number): Promise<RunFigures> {
  let next = 0
  const result = await autocannon({
    url: job.url,
    connections: job.connections,
    pipelining: 1,
    duration: seconds,
    setupClient(client: Client) {
      const slot = slots[next++]
      if (!slot) throw new Error(`more connections than slots (${slots.length})`)
      client.setRequests([
        {
          method: 'POST',
          path: job.path,
          headers: { 'content-type': 'application/json' },
          setupRequest(request) {
            request.body = JSON.stringify({ refreshToken: slot.token })
            return request
          },
          onResponse(status, body) {
            if (status < 200 || status > 299) {
              if (failureSamples.length < 5) failureSamples.push(`${status} ${body.slice(0, 300)}`)
              return
            }
            if (job.rotate) slot.token = (JSON.parse(body) as { refreshToken: string }).refreshToken
          },
        },
      ])
    },
  })
  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count
  return {
    requestsPerSecond: result.requests.average,
    total: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    latencyMean: result.latency.mean,
    latencyMax: result.latency.max,
    durationSeconds: result.duration,
  }
}

async function perform(job: LoadJob): Promise<LoadReport> {
  const slots = job.tokens.map((token) => ({ token }))
  const warmup = job.warmupSeconds > 0 ? await run(job, slots, job.warmupSeconds) : undefined
  // Tells the parent to start its own measurements (CPU time, event-loop use, profile).
  process.send!({ measuring: true })
  const cpuFrom = process.cpuUsage()
  const measured = await run(job, slots, job.seconds)
  const cpu = process.cpuUsage(cpuFrom)
  return { warmup, measured, tokens: slots.map((slot) => slot.token), failureSamples, measuredCpuMicros: cpu.user + cpu.system }
}

if (!process.send) throw new Error('bench/load-generator.ts runs as a child of bench/refresh.ts')
// The parent is gone (or done with us): stop at once rather than load a closed server.
process.once('disconnect', () => process.exit(0))
process.once('message', (job: LoadJob) => {
  perform(job).then(
    (report) => process.send!(report, () => process.disconnect()),
    (error: unknown) => {
      console.error('load generator failed:', error)
      process.exit(1)
    },
  )
})
