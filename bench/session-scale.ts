// Part of `npm run bench`: does a refresh slow down as Redis fills up, and what does a
// session cost in Redis memory? Two real gateways, each on a redis-server of its own: one
// holding 1,000 sessions, the other 1,000,000 (BENCH_SCALE_SESSIONS). The refresh load of
// bench/refresh.ts (POST /auth/token, fresh sessions per run) goes to both in alternating
// rounds, so drift in the machine's load falls on both alike; each round's pair is compared,
// and the median of those changes is the figure.
// Goal: rotations/s with 1M sessions within 10 % of 1k.
//
// The large Redis is filled directly, not through logins: 1,000 sessions are started the
// real way (the same as the small one), then copies of one of those users' keys (session,
// session index, cached scopes) are written under new random ids with DUMP/RESTORE, so every
// seeded session has the exact shape and size of a real one.
//
//   BENCH_SCALE_SESSIONS=1000000   sessions in the large Redis
//   BENCH_ROUNDS=5                 rounds (small/large, then large/small, ...)
//   BENCH_SECONDS=5, BENCH_WARMUP_SECONDS=2, BENCH_CONNECTIONS=64 as for bench/refresh.ts

import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { randomId } from '../src/common/secrets.js'
import type { RedisClient } from '../src/storage/redis.js'
import { sessionKeys } from '../verifier/session-keys.js'
import {
  hasFailures,
  loadJob,
  measure,
  percentChange,
  onCleanUp,
  printSetup,
  readLoadSettings,
  readNumber,
  redisCpuSeconds,
  runBench,
  startGateway,
  startRedis,
  startSessions,
  tempDir,
  type Measurement,
  type RunningGateway,
} from './harness.js'

const SETTINGS = readLoadSettings(5)
const ROUNDS = Math.floor(readNumber('BENCH_ROUNDS', 5, 1))
const LARGE = Math.floor(readNumber('BENCH_SCALE_SESSIONS', 1_000_000, 1000))
const SMALL = 1000
const GOAL_PERCENT = 10
/** Users whose keys are written in one pipeline while seeding. */
const SEED_BATCH = 2000

interface Target {
  name: string
  running: RunningGateway
  runs: { measurement: Measurement; redisMicrosPerRefresh: number }[]
}

async function main(): Promise<number> {
  const dir = await tempDir('gateway-scale-')
  const env = { RATE_LIMIT_TOKEN: '1000000', RATE_LIMIT_REFRESH: '1000000', JOB_CONCURRENCY: '0' }
  const start = async (name: string) => {
    const redis = await startRedis(dir)
    onCleanUp(() => redis.stop())
    const dataDir = join(dir, name)
    await mkdir(dataDir)
    return startGateway(dataDir, redis.url, env)
  }
  const small = await start('small')
  const large = await start('large')
  printSetup(SETTINGS)

  // Bytes per session: the small Redis before and after 1,000 real logins' sessions.
  const before = await usedMemory(small.gateway.redis)
  const smallSessions = await startManySessions(small, SMALL)
  const bytesPerSession = ((await usedMemory(small.gateway.redis)) - before) / SMALL
  const sample = smallSessions[0]!
  const keyBytes = await Promise.all(
    [sessionKeys.session(sample.userId, sample.sessionId), sessionKeys.index(sample.userId), sessionKeys.scopes(sample.userId)].map(
      async (key) => Number(await small.gateway.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')),
    ),
  )
  console.log(
    `redis memory per session (a user with one session: its session hash, session index and cached scopes): ` +
      `${bytesPerSession.toFixed(0)} bytes of used_memory; MEMORY USAGE of the three keys ${keyBytes.join(' + ')} = ${keyBytes.reduce((a, b) => a + b, 0)} bytes`,
  )

  const largeSessions = await startManySessions(large, SMALL)
  const seedStarted = Date.now()
  await seed(large.gateway.redis, largeSessions[0]!, LARGE - SMALL)
  const seeded = Number(await large.gateway.redis.dbsize())
  console.log(
    `seeded the large redis with ${(LARGE - SMALL).toLocaleString('en')} copies in ${((Date.now() - seedStarted) / 1000).toFixed(0)} s: ` +
      `${seeded.toLocaleString('en')} keys, ${((await usedMemory(large.gateway.redis)) / 2 ** 20).toFixed(0)} MiB used`,
  )

  const targets: Target[] = [
    { name: `${SMALL.toLocaleString('en')} sessions`, running: small, runs: [] },
    { name: `${LARGE.toLocaleString('en')} sessions`, running: large, runs: [] },
  ]
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse()
    for (const target of order) {
      const { gateway, url } = target.running
      const sessions = await startSessions(gateway.services.sessionTokens, SETTINGS.connections)
      const redisCpu = () => redisCpuSeconds(gateway.redis)
      const redisBefore = await redisCpu()
      const job = loadJob(SETTINGS, url, '/auth/token', sessions.map((session) => session.refreshToken), true)
      const measurement = await measure(target.name, job, { redisCpuSeconds: redisCpu })
      const refreshes = measurement.report.measured.total + (measurement.report.warmup?.total ?? 0)
      const redisMicrosPerRefresh = (((await redisCpu()) - redisBefore) * 1e6) / Math.max(refreshes, 1)
      target.runs.push({ measurement, redisMicrosPerRefresh })
      const { requestsPerSecond, latencyP99 } = measurement.report.measured
      console.log(
        `round ${round + 1} ${target.name.padEnd(20)} ${requestsPerSecond.toFixed(0).padStart(6)} rotations/s  p99 ${latencyP99} ms  ` +
          `server ${measurement.cpuPerRequest.toFixed(0)} µs/req  redis ${redisMicrosPerRefresh.toFixed(1)} µs/refresh  ` +
          `other processes ${((measurement.noise?.others ?? 0) * 100).toFixed(0)} % CPU`,
      )
    }
  }

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const figures = targets.map((target) => ({
    name: target.name,
    rps: median(target.runs.map((run) => run.measurement.report.measured.requestsPerSecond)),
    server: median(target.runs.map((run) => run.measurement.cpuPerRequest)),
    redis: median(target.runs.map((run) => run.redisMicrosPerRefresh)),
  }))
  console.log('\nmedians:')
  for (const { name, rps, server, redis } of figures) {
    console.log(`  ${name.padEnd(20)} ${rps.toFixed(0).padStart(6)} rotations/s, server ${server.toFixed(0)} µs/req, redis ${redis.toFixed(1)} µs/refresh`)
  }
  // Each round's pair ran back to back, so a slow spell of the machine falls on both of it:
  // the change is taken round by round, then its median (as bench/refresh.ts takes its ratio).
  const [fewer, many] = targets as [Target, Target]
  const changes = fewer.runs.map((run, round) => {
    const against = many.runs[round]!.measurement
    return {
      rps: percentChange(run.measurement.report.measured.requestsPerSecond, against.report.measured.requestsPerSecond),
      cpu: percentChange(run.measurement.cpuPerRequest, against.cpuPerRequest),
    }
  })
  const signed = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(1)} %`
  const rpsChanges = changes.map((change) => change.rps)
  console.log(
    `rotations/s with ${many.name} vs ${fewer.name}: ${signed(median(rpsChanges))}   (goal: within ${GOAL_PERCENT} %; ` +
      `median of the ${ROUNDS} rounds' pairs: ${rpsChanges.map(signed).join(', ')})`,
  )
  console.log(
    `server CPU per request with ${many.name} vs ${fewer.name}: ${signed(median(changes.map((change) => change.cpu)))}   ` +
      `(median of the rounds' pairs; steadier than rotations/s when other processes compete for the CPUs)`,
  )

  const failed = targets.flatMap((target) => target.runs).filter((run) => hasFailures(run.measurement.report))
  for (const run of failed) console.error(`FAILED: ${run.measurement.name} had failed requests`)
  return failed.length > 0 ? 1 : 0
}

/** `count` real sessions, 50 at a time (each reads the user's scopes from the embedded database). */
async function startManySessions({ gateway }: RunningGateway, count: number) {
  const sessions: Awaited<ReturnType<typeof startSessions>> = []
  while (sessions.length < count) sessions.push(...(await startSessions(gateway.services.sessionTokens, Math.min(50, count - sessions.length))))
  return sessions
}

async function usedMemory(redis: RedisClient): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? NaN)
}

/** Writes `count` copies of one real user's keys (one session each) under new random ids. */
async function seed(redis: RedisClient, model: { userId: string; sessionId: string }, count: number): Promise<void> {
  const sessionKey = sessionKeys.session(model.userId, model.sessionId)
  const [session, scopes, ttl] = await Promise.all([
    redis.dumpBuffer(sessionKey),
    redis.dumpBuffer(sessionKeys.scopes(model.userId)),
    redis.pttl(sessionKey),
  ])
  if (!session || !scopes) throw new Error('the model session has no keys to copy')
  for (let written = 0; written < count; written += SEED_BATCH) {
    const pipeline = redis.pipeline()
    for (let i = 0; i < Math.min(SEED_BATCH, count - written); i++) {
      const userId = randomId()
      const sessionId = randomId()
      pipeline.restore(sessionKeys.session(userId, sessionId), ttl, session)
      pipeline.zadd(sessionKeys.index(userId), Date.now(), sessionId)
      pipeline.pexpire(sessionKeys.index(userId), ttl)
      pipeline.restore(sessionKeys.scopes(userId), ttl, scopes)
    }
    const results = (await pipeline.exec()) ?? []
    const failure = results.find(([error]) => error)
    if (failure) throw failure[0]
  }
}

await runBench(main)
