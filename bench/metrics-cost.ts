// `npm run bench:metrics`: what the Prometheus metrics cost a refresh. The same refresh load
// as bench/refresh.ts (POST /auth/token, one fresh session per connection and run) goes to
// the real gateway without METRICS_PORT and with it, in alternating rounds; with metrics on,
// this process scrapes /metrics every second while the gateway is measured (Prometheus'
// default is every 15 s), as Prometheus would from outside the gateway's process. Goal:
// metrics cost under 3 % of rotations per second.
//
//   BENCH_ROUNDS=10          rounds; each starts both gateways afresh and measures them
//                            back to back, in alternating order (without/with, then
//                            with/without...)
//   BENCH_SECONDS=5, BENCH_WARMUP_SECONDS=2, BENCH_CONNECTIONS=64 as for bench/refresh.ts
//
// Each gateway lives in a child process of its own: prom-client's default metrics start
// process-wide observers (garbage collection, event-loop delay) that must not run in the
// gateway without metrics. Both share one redis-server. Short runs, alternated many times,
// let drift in the machine's load fall on both alike; each round's pair is compared, and the
// median of those costs is the figure. Exits non-zero when any request failed; the cost is
// reported, never asserted.

import { fork } from 'node:child_process'
import { freeLoopbackPort } from '../src/common/loopback.js'
import type { SessionTokens } from '../src/sessions/session-tokens.js'
import {
  hasFailures,
  loadJob,
  measure,
  median,
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
} from './harness.js'

const SETTINGS = readLoadSettings(5)
const ROUNDS = Math.floor(readNumber('BENCH_ROUNDS', 10, 1))
const GOAL_PERCENT = 3

type Target = 'without metrics' | 'with metrics'

interface TargetResult {
  target: Target
  requestsPerSecond: number
  cpuPerRequest: number
  p99: number
  /** CPUs' worth of other processes' work during the measured run. */
  others?: number
  failed: boolean
}

/** A child process: one gateway, measured each time the parent asks. */
async function serveTarget(target: Target, redisUrl: string): Promise<void> {
  const dataDir = await tempDir('gateway-metrics-bench-')
  const metricsPort = target === 'with metrics' ? Number(process.env.METRICS_COST_PORT) : undefined
  const { gateway, url } = await startGateway(dataDir, redisUrl, {
    RATE_LIMIT_TOKEN: '1000000',
    RATE_LIMIT_REFRESH: '1000000',
    ...(metricsPort ? { METRICS_PORT: String(metricsPort) } : {}),
  })
  if (gateway.metricsApp && metricsPort) await gateway.metricsApp.listen({ host: '127.0.0.1', port: metricsPort })

  const measureOnce = async (): Promise<TargetResult> => {
    const sessions = await startSessionsPatiently(gateway.services.sessionTokens, SETTINGS.connections)
    const job = loadJob(SETTINGS, url, '/auth/token', sessions.map((session) => session.refreshToken), true)
    const { report, cpuPerRequest, noise } = await measure(target, job, { redisCpuSeconds: () => redisCpuSeconds(gateway.redis) })
    const { requestsPerSecond, latencyP99 } = report.measured
    return { target, requestsPerSecond, cpuPerRequest, p99: latencyP99, others: noise?.others, failed: hasFailures(report) }
  }

  await new Promise<void>((resolve, reject) => {
    process.on('message', (message: 'measure' | 'stop') => {
      if (message === 'stop') return resolve()
      measureOnce().then((result) => process.send!(result), reject)
    })
    process.send!('ready')
  })
}

/**
 * harness.startSessions in batches of 8, each retried once: 64 session starts at once can
 * outlast Redis' command timeout when other processes crowd the two CPUs, which would end
 * the run before anything is measured.
 */
async function startSessionsPatiently(sessionTokens: SessionTokens, count: number) {
  const sessions: Awaited<ReturnType<typeof startSessions>> = []
  while (sessions.length < count) {
    const batch = Math.min(8, count - sessions.length)
    sessions.push(...(await startSessions(sessionTokens, batch).catch(() => startSessions(sessionTokens, batch))))
  }
  return sessions
}

interface RunningTarget {
  measure(): Promise<TargetResult>
  stop(): Promise<void>
}

async function startTarget(target: Target, redisUrl: string, metricsPort: number): Promise<RunningTarget> {
  const child = fork(new URL(import.meta.url), {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, METRICS_COST_TARGET: target, METRICS_COST_REDIS: redisUrl, METRICS_COST_PORT: String(metricsPort) },
    stdio: 'inherit',
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  onCleanUp(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  })
  const next = <T>() =>
    new Promise<T>((resolve, reject) => {
      const died = () => reject(new Error(`the ${target} gateway exited`))
      child.once('exit', died)
      child.once('message', (message: T) => {
        child.removeListener('exit', died)
        resolve(message)
      })
    })
  await next<'ready'>()
  return {
    measure() {
      const result = next<TargetResult>()
      child.send('measure')
      return result
    },
    async stop() {
      child.send('stop')
      await exited
    },
  }
}

async function main(): Promise<number> {
  const dir = await tempDir('gateway-metrics-bench-redis-')
  const redis = await startRedis(dir)
  onCleanUp(() => redis.stop())
  const redisUrl = redis.url
  printSetup(SETTINGS)
  console.log(`${ROUNDS} rounds; each round starts both gateways afresh, each in a process of its own; with metrics, this process scrapes /metrics every second\n`)

  const results: TargetResult[] = []
  const scrapeMs: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const order: Target[] = round % 2 === 0 ? ['without metrics', 'with metrics'] : ['with metrics', 'without metrics']
    // Fresh processes every round: two processes running the same code can differ by a few
    // percent for their whole life (bench/README.md), which would otherwise count as a cost
    // of the metrics in every round alike.
    const metricsPort = await freeLoopbackPort()
    const targets = {} as Record<Target, RunningTarget>
    for (const target of order) targets[target] = await startTarget(target, redisUrl, metricsPort)
    for (const target of order) {
      const scraper = target === 'with metrics' ? scrapeEverySecond(metricsPort, scrapeMs) : undefined
      const result = await targets[target].measure().finally(() => scraper?.stop())
      results.push(result)
      const noise = result.others === undefined ? '' : `, other processes ${(result.others * 100).toFixed(0)} % CPU`
      const scrapes = scraper ? `, ${scraper.count()} scrapes` : ''
      console.log(
        `round ${round + 1}  ${target.padEnd(15)}  ${result.requestsPerSecond.toFixed(0).padStart(6)} rotations/s  ` +
          `${result.cpuPerRequest.toFixed(0).padStart(4)} µs CPU/req  p99 ${result.p99.toFixed(1)} ms${noise}${scrapes}`,
      )
    }
    await Promise.all(Object.values(targets).map((target) => target.stop()))
  }

  const of = (target: Target) => results.filter((result) => result.target === target)
  const rps = (target: Target) => median(of(target).map((result) => result.requestsPerSecond))
  const cpu = (target: Target) => median(of(target).map((result) => result.cpuPerRequest))
  // Each round measured the pair back to back, so a slow spell of the machine falls on both
  // of it: the cost is taken round by round, then its median.
  const pairs = of('without metrics').map((without, round) => ({ without, with: of('with metrics')[round]! }))
  // A cost is what metrics take away: rotations/s lost, CPU per rotation gained.
  const rpsCosts = pairs.map((pair) => -percentChange(pair.without.requestsPerSecond, pair.with.requestsPerSecond))
  const cpuCosts = pairs.map((pair) => percentChange(pair.without.cpuPerRequest, pair.with.cpuPerRequest))
  const listed = (values: number[]) => values.map((value) => value.toFixed(1)).join(', ')
  console.log(
    `\nmetrics cost ${median(rpsCosts).toFixed(1)} % of rotations/s   (goal: < ${GOAL_PERCENT} %; median of the ${ROUNDS} rounds' pairs: ${listed(rpsCosts)} %)`,
  )
  console.log(
    `metrics cost ${median(cpuCosts).toFixed(1)} % more server CPU per rotation   (median of the rounds' pairs: ${listed(cpuCosts)} %; ` +
      `steadier than rotations/s when other processes compete for the CPUs)`,
  )
  console.log(
    `medians of each alone: ${rps('without metrics').toFixed(0)} rotations/s and ${cpu('without metrics').toFixed(0)} µs CPU per rotation without metrics, ` +
      `${rps('with metrics').toFixed(0)} and ${cpu('with metrics').toFixed(0)} µs with; a scrape took ${median(scrapeMs).toFixed(1)} ms (median of ${scrapeMs.length})`,
  )
  const failed = results.filter((result) => result.failed)
  for (const result of failed) console.error(`FAILED: a ${result.target} run had failed requests`)
  return failed.length > 0 ? 1 : 0
}


/**
 * Prometheus, as often as fifteen of its default scrapers: GET /metrics every second from
 * this process (not the gateway's), each scrape's time recorded in `durations`.
 */
function scrapeEverySecond(port: number, durations: number[]) {
  let count = 0
  const timer = setInterval(() => {
    const began = performance.now()
    fetch(`http://127.0.0.1:${port}/metrics`)
      .then((answer) => answer.text())
      .then(() => {
        count++
        durations.push(performance.now() - began)
      }, () => {})
  }, 1000)
  return { count: () => count, stop: () => clearInterval(timer) }
}

const childTarget = process.env.METRICS_COST_TARGET as Target | undefined
if (childTarget && process.send) {
  await runBench(async () => {
    await serveTarget(childTarget, process.env.METRICS_COST_REDIS!)
    // The IPC channel would keep this process alive after its cleanup.
    process.disconnect()
    return 0
  })
} else {
  await runBench(main)
}
