// Delivers the queue's jobs, in every gateway instance: a few loops each take a due job,
// run its handler, and record the outcome in the audit trail. A failure is retried with
// exponential backoff and jitter until the job is older than the retry window, then given
// up (and recorded as such). Nothing here runs inside a user's request: a provider that is
// down delays its job, never a login or a deletion.

import type { AuditLog } from '../audit/audit-log.js'
import { GatewayError } from '../common/errors.js'
import type { JobQueue, TakenJob } from './job-queue.js'

export interface JobHandler {
  /** Does the job's work; resolves with what was done (for the audit trail), throws to be retried. */
  run(payload: any, signal: AbortSignal): Promise<string>
  /** Whom and what the job is about, for the audit trail and the log: never a secret. */
  describe(payload: any): { userId?: string; what: string }
}

/** A failure that no retry can mend (an unreadable job): the job is given up at once. */
export class PermanentJobFailure extends Error {}

export interface JobWorkerOptions {
  /** Loops taking jobs in this instance; 0: this instance delivers nothing. */
  concurrency: number
  /** The delay before the first retry; each further one doubles it, up to an hour. */
  firstRetryDelayMs: number
  /** A job still failing this long after it was written is given up. */
  retryForMs: number
  /** How long a taken job is this instance's; longer than any handler can take. */
  leaseMs: number
  /** How often idle loops look for jobs written or come due elsewhere. */
  pollMs: number
}

export interface JobLog {
  warn(object: unknown, message: string): void
}

const MAX_RETRY_DELAY_MS = 60 * 60 * 1000
/** Polls skipped after the database failed to answer, so an outage logs a line per loop every few seconds, not every poll. */
const OUTAGE_POLLS = 10

export class JobWorker {
  private readonly stopping = new AbortController()
  private readonly loops: Promise<void>[] = []
  /** Idle loops waiting for a poll, a retry coming due, or the stop. */
  private readonly sleepers = new Set<() => void>()
  /** The kinds of job this instance takes: those it has a handler for. */
  private readonly kinds: string[]

  constructor(
    private readonly queue: JobQueue,
    private readonly handlers: Readonly<Record<string, JobHandler>>,
    private readonly audit: AuditLog,
    private readonly log: JobLog,
    private readonly options: JobWorkerOptions,
  ) {
    this.kinds = Object.keys(handlers)
  }

  start(): void {
    for (let index = 0; index < this.options.concurrency; index += 1) this.loops.push(this.loop())
  }

  /** Jobs were just written here: idle loops look now instead of at their next poll. */
  wake(): void {
    for (const wake of this.sleepers) wake()
  }

  /** Stops taking jobs; jobs being delivered are aborted and become due again at once. */
  async stop(): Promise<void> {
    this.stopping.abort()
    this.wake()
    await Promise.all(this.loops)
  }

  private async loop(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      let job: TakenJob | undefined
      try {
        job = await this.queue.take(this.options.leaseMs, this.kinds)
      } catch (error) {
        // The database is away: jobs wait in it, nothing is lost. Look again later, not every poll.
        this.log.warn({ err: { message: (error as Error).message } }, 'jobs: cannot take a job')
        await this.sleep(this.options.pollMs * OUTAGE_POLLS)
        continue
      }
      if (job) await this.deliver(job)
      else await this.sleep(this.options.pollMs)
    }
  }

  private async deliver(job: TakenJob): Promise<void> {
    const handler = this.handlers[job.kind]
    let about: { userId?: string; what: string } = { what: job.kind }
    try {
      if (!handler) throw new PermanentJobFailure(`no handler for jobs of kind "${job.kind}"`)
      const payload = parsed(job.payload)
      about = handler.describe(payload)
      const done = await handler.run(payload, this.stopping.signal)
      await this.queue.finish(job)
      await this.record(job, about, 'job.delivered', 'success', done)
    } catch (error) {
      if (this.stopping.signal.aborted) {
        // Not the job's fault: another instance (or this one, restarted) takes it again.
        await this.queue.retryLater(job, 0, 'the gateway stopped during delivery').catch(() => {})
        return
      }
      await this.failed(job, about, error).catch((failure: unknown) => {
        // The lease then brings the job back; nothing is lost.
        this.log.warn({ job: String(job.id), err: { message: (failure as Error).message } }, 'jobs: cannot record a failed delivery')
      })
    }
  }

  private async failed(job: TakenJob, about: { userId?: string; what: string }, error: unknown): Promise<void> {
    const reason = reasonOf(error)
    const delayMs = this.retryDelayMs(job.attempt)
    if (error instanceof PermanentJobFailure || job.ageMs + delayMs > this.options.retryForMs) {
      await this.queue.finish(job)
      this.log.warn({ job: String(job.id), kind: job.kind, what: about.what, attempts: job.attempt, reason }, 'jobs: given up')
      await this.record(job, about, 'job.abandoned', 'failed', reason)
      return
    }
    await this.queue.retryLater(job, delayMs, reason)
    // This loop may be asleep for a whole poll when the retry comes due.
    setTimeout(() => this.wake(), delayMs).unref()
    await this.record(job, about, 'job.failed', 'failed', `${reason}; retry in ${Math.ceil(delayMs / 1000)} s`)
  }

  /** Exponential from the first delay, capped at an hour; "equal jitter" spreads instances' retries. */
  private retryDelayMs(attempt: number): number {
    const ceiling = Math.min(MAX_RETRY_DELAY_MS, this.options.firstRetryDelayMs * 2 ** Math.min(attempt - 1, 30))
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2)
  }

  private record(job: TakenJob, about: { userId?: string; what: string }, action: 'job.delivered' | 'job.failed' | 'job.abandoned', outcome: 'success' | 'failed', detail: string) {
    return this.audit.record({ action, actor: 'system', outcome, userId: about.userId, target: `job:${job.id}`, detail: `${about.what} (attempt ${job.attempt}): ${detail}` })
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping.signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.sleepers.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.sleepers.add(done)
    })
  }
}

function parsed(payload: string): unknown {
  try {
    return JSON.parse(payload)
  } catch {
    throw new PermanentJobFailure('the job payload is not JSON')
  }
}

/** What went wrong, for the audit trail: our errors' message and operator detail, never a cause's text (it may quote a request). */
function reasonOf(error: unknown): string {
  if (error instanceof GatewayError) return error.detail ? `${error.message} (${error.detail})` : error.message
  if (error instanceof PermanentJobFailure) return error.message
  return error instanceof Error ? `${error.name}: ${error.message}` : 'unknown failure'
}
