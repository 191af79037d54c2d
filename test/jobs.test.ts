// The durable job queue on both databases the gateway runs on (PostgreSQL and the embedded
// PGlite): a taken job is nobody else's until its lease ends, two instances never take
// the same job, a failing job is retried with backoff and then given up, every outcome is
// in the audit trail, and a stopping worker gives its job back at once.

import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { AuditLog } from '../src/audit/audit-log.js'
import { JobQueue } from '../src/jobs/job-queue.js'
import { JobWorker, PermanentJobFailure, type JobHandler, type JobWorkerOptions } from '../src/jobs/job-worker.js'
import { openDatabase, type Database } from '../src/storage/database.js'
import { createTestDatabase } from './support/postgres.js'
import { until } from './support/until.js'

const postgres = await createTestDatabase()
t.teardown(() => postgres.drop())
const databases: Record<string, Database> = {
  postgresql: await openDatabase({ databaseUrl: postgres.url, dataDir: 'unused' }),
  pglite: await openDatabase({ dataDir: 'memory://' }),
}
t.teardown(async () => {
  for (const database of Object.values(databases)) await database.close()
})

const quiet = { warn: () => {} }
const FAST: JobWorkerOptions = { concurrency: 1, firstRetryDelayMs: 20, retryForMs: 60_000, leaseMs: 30_000, pollMs: 20 }


for (const [name, database] of Object.entries(databases)) {
  const { prisma } = database
  const queue = new JobQueue(prisma)
  const audit = new AuditLog(database, quiet)
  const auditOf = (jobId: bigint) => prisma.auditEvent.findMany({ where: { target: `job:${jobId}` }, orderBy: { id: 'asc' } })

  t.test(`${name}: a taken job is nobody else's until its lease ends, then due again`, async (t) => {
    await prisma.job.deleteMany()
    await queue.add([{ kind: 'first', payload: '{}' }, { kind: 'second', payload: '{}' }])
    const kinds = ['first', 'second']
    const first = await queue.take(300, kinds)
    t.match(first, { kind: 'first', attempt: 1 }, 'the oldest job first')
    const second = await queue.take(300, kinds)
    t.match(second, { kind: 'second', attempt: 1 }, 'the next taker gets the next job, not the same one')
    t.equal(await queue.take(300, kinds), undefined, 'nothing else is due while both are leased')
    await sleep(400)
    const again = await queue.take(300, kinds)
    t.match(again, { kind: 'first', attempt: 2 }, 'a lease that ran out (its worker died) makes the job due again')
    await queue.finish(first!)
    t.equal(await prisma.job.count({ where: { kind: 'first' } }), 1, "the first taker's late finish does not remove the job its successor holds")
    await queue.finish(again!)
    t.equal(await prisma.job.count({ where: { kind: 'first' } }), 0)
  })

  t.test(`${name}: a failing job is retried with backoff until it succeeds, each outcome audited, then gone`, async (t) => {
    await prisma.job.deleteMany()
    const seen: number[] = []
    const handler: JobHandler = {
      describe: (payload: { userId: string }) => ({ userId: payload.userId, what: 'flaky call' }),
      async run() {
        seen.push(Date.now())
        if (seen.length < 3) throw new Error('the far side answered HTTP 503')
        return 'done'
      },
    }
    await queue.add([{ kind: 'flaky', payload: JSON.stringify({ userId: 'user-1' }) }])
    const [job] = await prisma.job.findMany()
    const worker = new JobWorker(queue, { flaky: handler }, audit, quiet, FAST)
    worker.start()
    t.teardown(() => worker.stop())
    await until('the job to be delivered', async () => (await prisma.job.count()) === 0)
    t.equal(seen.length, 3, 'two failures, then the delivery')
    t.ok(seen[2]! - seen[1]! >= 20, 'the second retry waits at least the first retry delay (it doubles)')
    const trail = await until('the delivery to be audited', async () => {
      const rows = await auditOf(job!.id)
      return rows.length === 3 && rows
    })
    t.same(
      trail.map((row) => [row.action, row.outcome, row.userId]),
      [
        ['job.failed', 'failed', 'user-1'],
        ['job.failed', 'failed', 'user-1'],
        ['job.delivered', 'success', 'user-1'],
      ],
    )
    t.match(trail[0]!.detail, /^flaky call \(attempt 1\): Error: the far side answered HTTP 503; retry in \d+ s$/)
  })

  t.test(`${name}: a job still failing after the retry window, or unreadable, is given up and audited; a kind this instance cannot deliver is left to others`, async (t) => {
    await prisma.job.deleteMany()
    const failing: JobHandler = { describe: () => ({ what: 'dead end' }), run: () => Promise.reject(new Error('still down')) }
    await queue.add([{ kind: 'failing', payload: '{}' }, { kind: 'failing', payload: 'not json' }, { kind: 'elsewhere', payload: '{}' }])
    const jobs = await prisma.job.findMany({ orderBy: { id: 'asc' } })
    const worker = new JobWorker(queue, { failing }, audit, quiet, { ...FAST, retryForMs: 200 })
    worker.start()
    t.teardown(() => worker.stop())
    await until('every job it can deliver to be given up', async () => (await prisma.job.count({ where: { kind: 'failing' } })) === 0)
    t.match(await prisma.job.findMany(), [{ kind: 'elsewhere', attempts: 0 }], 'the other kind waits, untouched, for an instance that delivers it')
    for (const job of jobs.slice(0, 2)) {
      const trail = await until('the outcome in the trail', async () => {
        const rows = await auditOf(job.id)
        return rows.at(-1)?.action === 'job.abandoned' && rows
      })
      t.equal(trail.at(-1)!.outcome, 'failed', `${job.kind}: given up`)
    }
    t.ok((await auditOf(jobs[0]!.id)).length >= 2, 'the failing job was tried more than once first')
    t.equal((await auditOf(jobs[1]!.id)).length, 1, 'an unreadable job is given up at once')
    t.match((await auditOf(jobs[1]!.id))[0]!.detail, /not JSON/)
  })

  t.test(`${name}: a stopping worker aborts its delivery and gives the job back at once`, async (t) => {
    await prisma.job.deleteMany()
    let aborted = false
    const hanging: JobHandler = {
      describe: () => ({ what: 'slow receiver' }),
      run: (_payload, signal) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => {
            aborted = true
            reject(new Error('aborted'))
          }),
        ),
    }
    await queue.add([{ kind: 'hanging', payload: '{}' }])
    const worker = new JobWorker(queue, { hanging }, audit, quiet, FAST)
    worker.start()
    await until('the job to be taken', async () => (await prisma.job.findFirst())?.attempts === 1)
    await worker.stop()
    t.ok(aborted, 'the delivery was aborted')
    const taken = await queue.take(1000, ['hanging'])
    t.match(taken, { kind: 'hanging', attempt: 2 }, 'due again at once, not after its lease')
    t.equal((await auditOf(taken!.id)).length, 0, 'a stop is not a failure of the job')
  })
}

t.test('two instances on one PostgreSQL database deliver each job exactly once', async (t) => {
  const { prisma } = databases.postgresql!
  await prisma.job.deleteMany()
  const second = await openDatabase({ databaseUrl: postgres.url, dataDir: 'unused' })
  t.teardown(() => second.close())
  const deliveries = new Map<string, string[]>()
  const handlerFor = (instance: string): JobHandler => ({
    describe: () => ({ what: 'count' }),
    async run(payload: { n: number }) {
      deliveries.set(String(payload.n), [...(deliveries.get(String(payload.n)) ?? []), instance])
      await sleep(2)
      return 'counted'
    },
  })
  await new JobQueue(prisma).add(Array.from({ length: 60 }, (_, n) => ({ kind: 'count', payload: JSON.stringify({ n }) })))
  const workers = [
    new JobWorker(new JobQueue(prisma), { count: handlerFor('a') }, new AuditLog(databases.postgresql!, quiet), quiet, { ...FAST, concurrency: 4 }),
    new JobWorker(new JobQueue(second.prisma), { count: handlerFor('b') }, new AuditLog(second, quiet), quiet, { ...FAST, concurrency: 4 }),
  ]
  for (const worker of workers) worker.start()
  t.teardown(() => Promise.all(workers.map((worker) => worker.stop())))
  await until('every job to be delivered', async () => (await prisma.job.count()) === 0)
  t.equal(deliveries.size, 60, 'every job was delivered')
  t.same([...deliveries.values()].filter((by) => by.length !== 1), [], 'none twice')
  const instances = new Set([...deliveries.values()].flat())
  t.same([...instances].sort(), ['a', 'b'], 'both instances took jobs')
})

t.test('a worker with nothing to do makes no audit rows and keeps polling cheaply', async (t) => {
  const { prisma } = databases.pglite!
  await prisma.job.deleteMany()
  const before = await prisma.auditEvent.count()
  const worker = new JobWorker(new JobQueue(prisma), {}, new AuditLog(databases.pglite!, quiet), quiet, FAST)
  worker.start()
  await sleep(200)
  await worker.stop()
  t.equal(await prisma.auditEvent.count(), before)
})

t.test('PermanentJobFailure from a handler gives the job up without retries', async (t) => {
  const { prisma } = databases.pglite!
  await prisma.job.deleteMany()
  let runs = 0
  const handler: JobHandler = {
    describe: () => ({ what: 'undecryptable grant' }),
    async run() {
      runs += 1
      throw new PermanentJobFailure('the kept grant cannot be decrypted')
    },
  }
  const queue = new JobQueue(prisma)
  await queue.add([{ kind: 'permanent', payload: '{}' }])
  const worker = new JobWorker(queue, { permanent: handler }, new AuditLog(databases.pglite!, quiet), quiet, FAST)
  worker.start()
  t.teardown(() => worker.stop())
  await until('the job to be given up', async () => (await prisma.job.count()) === 0)
  t.equal(runs, 1)
})
