// The durable queue in the database: work that must happen after a change (a provider's
// unlink, an event for the app) is a row written in the same transaction as the change, so
// it exists exactly when the change does. Any gateway instance may take a due job: taking
// one moves its run_at a lease ahead in a single statement with FOR UPDATE SKIP LOCKED, so
// two instances never take the same row, and a worker killed mid-delivery leaves a job that
// becomes due again when the lease ends. All times are the database's own clock.

import { Prisma, type PrismaClient } from '../generated/prisma/client.js'
import { inDatabase } from '../storage/database.js'

/** A row to write beside a change: `tx.job.createMany({ data: rows })`. */
export interface JobRow {
  kind: string
  /** JSON; whatever is secret in it is already encrypted. */
  payload: string
}

/** A job a worker has taken; `attempt` also tells later updates it is still this worker's. */
export interface TakenJob {
  id: bigint
  kind: string
  payload: string
  /** 1 on the first delivery. */
  attempt: number
  /** Milliseconds since the job was written. */
  ageMs: number
}

export class JobQueue {
  constructor(private readonly prisma: PrismaClient) {}

  /** Writes jobs outside any other change (for changes that live in Redis). */
  async add(rows: JobRow[]): Promise<void> {
    if (rows.length > 0) await inDatabase(() => this.prisma.job.createMany({ data: rows }))
  }

  /**
   * Takes the oldest due job of one of `kinds` (those this instance can deliver) for
   * `leaseMs`, or undefined when none is due. An instance configured without a webhook
   * leaves account events to the instances that have one.
   */
  async take(leaseMs: number, kinds: readonly string[]): Promise<TakenJob | undefined> {
    if (kinds.length === 0) return undefined
    const [job] = await inDatabase(() =>
      this.prisma.$queryRaw<{ id: bigint; kind: string; payload: string; attempts: number; age_ms: number }[]>`
        UPDATE jobs SET run_at = now() + make_interval(secs => ${leaseMs / 1000}::float8), attempts = attempts + 1
        WHERE id = (SELECT id FROM jobs WHERE run_at <= now() AND kind IN (${Prisma.join([...kinds])}) ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id, kind, payload, attempts, (EXTRACT(EPOCH FROM (now() - created_at)) * 1000)::float8 AS age_ms`,
    )
    return job && { id: job.id, kind: job.kind, payload: job.payload, attempt: job.attempts, ageMs: Number(job.age_ms) }
  }

  /**
   * Done (delivered, or given up): the row goes, and with it any provider token it held.
   * Only while still this attempt's: a job whose lease ran out belongs to its next taker.
   */
  async finish(job: TakenJob): Promise<void> {
    await inDatabase(() => this.prisma.job.deleteMany({ where: { id: job.id, attempts: job.attempt } }))
  }

  /** Failed this time: due again after `delayMs`, with what went wrong (never a secret). */
  async retryLater(job: TakenJob, delayMs: number, error: string): Promise<void> {
    await inDatabase(
      () => this.prisma.$executeRaw`
        UPDATE jobs SET run_at = now() + make_interval(secs => ${delayMs / 1000}::float8), last_error = ${error.slice(0, 500)}
        WHERE id = ${job.id} AND attempts = ${job.attempt}`,
    )
  }

  /** Jobs waiting, by kind (the metrics' queue depth). */
  async waiting(): Promise<Record<string, number>> {
    const groups = await inDatabase(() => this.prisma.job.groupBy({ by: ['kind'], _count: { _all: true } }))
    return Object.fromEntries(groups.map((group) => [group.kind, group._count._all]))
  }
}
