// `npm run bench`: refresh-token rotations per second through the real gateway (real
// redis-server, embedded database, ES256 keys), against a baseline of a bare fastify app
// that only signs one access token with the same key. Goal: gateway/baseline >= 0.7, p99 <= 25 ms.
//
// The targets are measured in alternating rounds, the baseline and the gateway back to back
// (the baseline first in odd rounds, the gateway in even ones): the load of other processes
// on a shared machine drifts over tens of seconds, and one long run per target would
// compare them under different loads. The ratio reported is the median of the rounds'
// ratios; the table pools all rounds.
//
//   BENCH_ROUNDS=5           rounds
//   BENCH_SECONDS=20         measured seconds per target in all, shared out over the rounds
//                            (whole seconds per run, at least 1)
//   BENCH_WARMUP_SECONDS=2   unmeasured warm-up before each run of round 1 (0: none); later
//                            rounds warm up for 1 s (or less when this is less)
//   BENCH_CONNECTIONS=64     concurrent connections, one refresh session each
//   BENCH_SPLIT=1            add a third target, measured last in each round: the gateway's
//                            refresh service behind a bare fastify route, to split the gap
//                            into HTTP layer and refresh
//   BENCH_CPU_PROFILE=dir    also CPU-profile the servers' thread during each measured run of
//                            round 1: writes <dir>/<target>.cpuprofile and prints where the time goes
// What-if knobs (for comparing deployment/implementation options, off by default):
//   BENCH_REDIS_SOCKET=1     the gateway reaches redis-server over a unix socket, not TCP
//                            (read per command, so it can be flipped at run time)
//
// Exits non-zero when any request failed (a benchmark of 401s is meaningless) or the
// rotations in Redis do not match the 2xx answers; the ratio itself is reported, never
// asserted. See bench/README.md.

import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Session } from 'node:inspector/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Gateway } from '../src/gateway.js'
import type { SessionTokens } from '../src/sessions/session-tokens.js'
import { AccessTokens } from '../src/tokens/access-tokens.js'
import {
  answered,
  buildBaseline,
  columns,
  hasFailures,
  loadJob,
  measure,
  median,
  onCleanUp,
  printSetup,
  printTable,
  readLoadSettings,
  readNumber,
  redisCpuSeconds,
  runBench,
  serve,
  startRedis,
  startGateway,
  startSessions,
  tempDir,
  type LoadSettings,
  type Measurement,
  type Probe,
} from './harness.js'
import type { LoadReport, RunFigures } from './load-generator.js'

// 4 s a run by default: runs of 2 s measured lower req/s and a higher p99 for both targets
// than runs of 4 s (bench/README.md).
const SETTINGS = readLoadSettings(20)
const ROUNDS = Math.floor(readNumber('BENCH_ROUNDS', 5, 1))
// Whole seconds: autocannon ends a run only on its once-a-second tick, so a fraction would
// be rounded up anyway, and unevenly.
const RUN_SECONDS = Math.max(1, Math.round(SETTINGS.seconds / ROUNDS))
const LATER_WARMUP_SECONDS = Math.min(SETTINGS.warmupSeconds, 1)
const PROFILE_DIR = process.env.BENCH_CPU_PROFILE?.trim() || undefined
const REDIS_SOCKET = process.env.BENCH_REDIS_SOCKET === '1'
const SPLIT = process.env.BENCH_SPLIT === '1'
const GOAL = 0.7

async function main(): Promise<number> {
  const dataDir = await tempDir('gateway-bench-')
  const redis = await startRedis(dataDir, REDIS_SOCKET)
  onCleanUp(() => redis.stop())

  const { gateway, config, url: gatewayUrl } = await startGateway(dataDir, REDIS_SOCKET ? redis.socket : redis.url, {
    // 64 connections from one address: far beyond any per-client budget, on purpose.
    RATE_LIMIT_TOKEN: '1000000',
    RATE_LIMIT_REFRESH: '1000000',
  })

  const services = gateway.services
  const baselineTokens = new AccessTokens(services.keys, {
    issuer: config.publicUrl,
    audience: config.tokenAudience,
    ttlSeconds: config.accessTokenTtl,
    appClientId: config.appClientId,
  })
  const baselineUrl = await serve(buildBaseline(baselineTokens))
  // The same refresh service behind a bare fastify route: separates the cost of the
  // gateway's HTTP layer (plugins, schema, hooks) from the cost of the refresh itself.
  const bareUrl = SPLIT ? await serve(buildBareRefresh(services.sessionTokens)) : undefined

  const startBenchSessions = () => startSessions(services.sessionTokens, SETTINGS.connections)
  const redisCpu = () => redisCpuSeconds(gateway.redis)
  // A new profiler per measured run of round 1 (one profile per target); none unless BENCH_CPU_PROFILE is set.
  const options = (round: number) => ({ redisCpuSeconds: redisCpu, probe: PROFILE_DIR && round === 1 ? cpuProfiler(PROFILE_DIR) : undefined })

  printSetup(SETTINGS)
  console.log(
    `${ROUNDS} rounds of ${RUN_SECONDS} s measured per target, after a warm-up of ${SETTINGS.warmupSeconds} s in round 1 ` +
      `and ${LATER_WARMUP_SECONDS} s in later rounds`,
  )
  const whatIfs = [REDIS_SOCKET && 'redis over a unix socket'].filter(Boolean)
  if (whatIfs.length > 0) console.log(`what-if options: ${whatIfs.join(', ')}`)
  console.log(`baseline: bare fastify, POST /token signs one ES256 access token (${baselineUrl})`)
  console.log(`gateway: POST /auth/token { refreshToken }, one session per connection (${gatewayUrl})`)
  if (bareUrl) console.log(`split: bare fastify, POST /refresh calls the gateway's sessionTokens.refresh (${bareUrl})`)

  const base: Measurement[] = []
  const refresh: Measurement[] = []
  const split: Measurement[] = []
  const redisUse: RedisUse = { refreshes: 0, cpuSeconds: 0, commands: new Map() }
  const inconsistent: string[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const job = (url: string, path: string, tokens: string[], rotate: boolean) => loadJob(runSettings(round), url, path, tokens, rotate)
    const tokensOf = (sessions: { refreshToken: string }[]) => sessions.map((session) => session.refreshToken)
    // Fresh sessions for every run (the runs before rotated theirs), all made before the
    // round's runs so that nothing comes between the baseline and the gateway.
    const sessions = await startBenchSessions()
    const bareSessions = bareUrl ? await startBenchSessions() : []
    const placeholder = sessions[0]!.refreshToken
    const measureBaseline = async () => {
      base.push(await measure('baseline (sign only)', job(baselineUrl, '/token', sessions.map(() => placeholder), false), options(round)))
    }
    const measureGateway = async () => {
      // Redis' counters start afresh for each gateway run: the session starts and checks in
      // between are not the gateway's refreshes.
      await gateway.redis.config('RESETSTAT')
      const redisCpuBefore = await redisCpu()
      const gatewayRun = await measure('gateway refresh', job(gatewayUrl, '/auth/token', tokensOf(sessions), true), options(round))
      redisUse.cpuSeconds += (await redisCpu()) - redisCpuBefore
      addCommandStats(redisUse.commands, await gateway.redis.info('commandstats'))
      refresh.push(gatewayRun)
      const gatewayRotations = await rotationsMatch(gateway, sessions, gatewayRun)
      if (!gatewayRotations.consistent) inconsistent.push(`${gatewayRun.name}, round ${round}`)
      redisUse.refreshes += gatewayRotations.rotations
    }
    // Odd rounds measure the baseline first, even rounds the gateway: a load that keeps
    // rising or falling within a round favours neither.
    for (const run of round % 2 === 1 ? [measureBaseline, measureGateway] : [measureGateway, measureBaseline]) await run()
    printRound(round, base.at(-1)!, refresh.at(-1)!)

    if (bareUrl) {
      const bareRun = await measure('bare fastify + refresh', job(bareUrl, '/refresh', tokensOf(bareSessions), true), options(round))
      split.push(bareRun)
      if (!(await rotationsMatch(gateway, bareSessions, bareRun)).consistent) inconsistent.push(`${bareRun.name}, round ${round}`)
    }
  }

  const pooledBase = pooled(base)
  const pooledRefresh = pooled(refresh)
  const pooledSplit = SPLIT ? pooled(split) : undefined
  const table = [pooledBase, ...(pooledSplit ? [pooledSplit] : []), pooledRefresh]
  printTable(table, [columns.serverThreadBusy, columns.serverCpuPerRequest, columns.otherProcesses])
  console.log(
    `all ${ROUNDS} rounds pooled: req/s = requests / measured seconds, CPU per request over all requests; ` +
      "p50 and p99 are the median of the rounds' values; other processes: the busiest run",
  )
  const busiest = Math.max(...table.map((target) => target.noise?.others ?? 0))
  if (busiest > 0.1) {
    console.log(
      `\nnote: other processes on this machine used up to ${(busiest * 100).toFixed(0)} % of one CPU during a measured run; ` +
        'they competed with the bench, so req/s (and the ratio) are noisy: run again on a quieter machine',
    )
  }
  const rounds = base.map((baseRun, index) => ({ base: baseRun, refresh: refresh[index]! }))
  const all = { base: pooledBase, refresh: pooledRefresh }
  const ratios = rounds.map(rpsRatio)
  const costRatios = rounds.map(costRatio)
  console.log(`\nratio gateway_rps / baseline_rps = ${median(ratios).toFixed(3)}   (goal: ratio >= ${GOAL}; ${spread(ratios, rpsRatio(all))})`)
  console.log(
    `cost ratio baseline_cpu / gateway_cpu = ${median(costRatios).toFixed(3)}   (${spread(costRatios, costRatio(all))}; ` +
      'server-process CPU per request, steadier than req/s when other processes compete for the CPUs)',
  )
  if (pooledSplit) {
    const cpu = (measurement: Measurement) => measurement.cpuPerRequest
    console.log(
      `split of the extra CPU per request, all rounds pooled (gateway - baseline = ${(cpu(pooledRefresh) - cpu(pooledBase)).toFixed(0)} µs): ` +
        `refresh service ${(cpu(pooledSplit) - cpu(pooledBase)).toFixed(0)} µs, ` +
        `gateway HTTP layer ${(cpu(pooledRefresh) - cpu(pooledSplit)).toFixed(0)} µs`,
    )
  }
  printRedisUse(redisUse)

  const failures = [base, split, refresh]
    .flatMap((runs) => runs.map((run, index) => ({ run, round: index + 1 })))
    .filter(({ run }) => hasFailures(run.report))
  for (const { run: { name, report }, round } of failures) {
    console.error(`\nFAILED: ${name}, round ${round}, had failed requests (warm-up and measured runs):`)
    for (const run of [report.warmup, report.measured]) {
      if (run) console.error(`  status codes ${JSON.stringify(run.statusCodes)}, ${run.errors} connection errors, ${run.timeouts} timeouts`)
    }
    for (const sample of report.failureSamples) console.error(`  ${sample}`)
  }
  for (const name of inconsistent) console.error(`\nFAILED: ${name}: the rotations recorded in redis do not match the 2xx answers`)
  return failures.length > 0 || inconsistent.length > 0 ? 1 : 0
}

/**
 * The load settings of one run: the configured warm-up in round 1 warms the servers' JIT
 * (both servers live in this process and stay warm); later runs need only a short one,
 * for their new load generator process and connections to settle.
 */
function runSettings(round: number): LoadSettings {
  return { ...SETTINGS, seconds: RUN_SECONDS, warmupSeconds: round === 1 ? SETTINGS.warmupSeconds : LATER_WARMUP_SECONDS }
}

interface Pair {
  base: Measurement
  refresh: Measurement
}

const rpsRatio = ({ base, refresh }: Pair) => refresh.report.measured.requestsPerSecond / base.report.measured.requestsPerSecond
const costRatio = ({ base, refresh }: Pair) => base.cpuPerRequest / refresh.cpuPerRequest

function printRound(round: number, base: Measurement, refresh: Measurement): void {
  const rps = (run: Measurement) => `${run.report.measured.requestsPerSecond.toFixed(0)} req/s (p99 ${run.report.measured.latencyP99} ms)`
  const others = (run: Measurement) => (run.noise ? `${(run.noise.others * 100).toFixed(0)} %` : 'n/a')
  console.log(
    `round ${round}: baseline ${rps(base)}, gateway ${rps(refresh)}: ratio ${rpsRatio({ base, refresh }).toFixed(3)}, ` +
      `cost ratio ${costRatio({ base, refresh }).toFixed(3)}   (other processes ${others(base)} / ${others(refresh)} of a CPU)`,
  )
}

/** What to print beside a median of the rounds: their range, and the figure of all rounds pooled. */
function spread(perRound: number[], pooledValue: number): string {
  const range = `${Math.min(...perRound).toFixed(3)}–${Math.max(...perRound).toFixed(3)}`
  return `median of ${perRound.length} rounds, range ${range}; pooled ${pooledValue.toFixed(3)}`
}

/**
 * One target's runs as one Measurement, for the table and the pooled ratios: counts and
 * CPU summed, req/s and CPU per request over the totals, server-thread busy weighted by
 * time, noise at its worst. Percentiles do not add up across runs: p50 and p99 are the
 * median of the runs'.
 */
function pooled(runs: Measurement[]): Measurement {
  const measured = runs.map((run) => run.report.measured)
  const sum = (value: (run: RunFigures) => number) => measured.reduce((total, run) => total + value(run), 0)
  const total = sum((run) => run.total)
  const seconds = sum((run) => run.durationSeconds)
  const statusCodes: Record<string, number> = {}
  for (const [code, count] of measured.flatMap((run) => Object.entries(run.statusCodes))) statusCodes[code] = (statusCodes[code] ?? 0) + count
  const noises = runs.flatMap((run) => (run.noise ? [run.noise] : []))
  return {
    name: runs[0]!.name,
    report: {
      measured: {
        requestsPerSecond: total / seconds,
        total,
        ok: sum((run) => run.ok),
        non2xx: sum((run) => run.non2xx),
        errors: sum((run) => run.errors),
        timeouts: sum((run) => run.timeouts),
        statusCodes,
        latencyP50: median(measured.map((run) => run.latencyP50)),
        latencyP99: median(measured.map((run) => run.latencyP99)),
        latencyMean: sum((run) => run.latencyMean * run.total) / Math.max(total, 1),
        latencyMax: Math.max(...measured.map((run) => run.latencyMax)),
        durationSeconds: seconds,
      },
      // Tokens and failed answers belong to their run, and are checked per run.
      tokens: [],
      failureSamples: [],
      measuredCpuMicros: runs.reduce((micros, run) => micros + run.report.measuredCpuMicros, 0),
    },
    serverThreadBusy: runs.reduce((busy, run) => busy + run.serverThreadBusy * run.report.measured.durationSeconds, 0) / seconds,
    cpuPerRequest: runs.reduce((micros, run) => micros + run.cpuPerRequest * run.report.measured.total, 0) / Math.max(total, 1),
    noise:
      noises.length > 0
        ? { others: Math.max(...noises.map((noise) => noise.others)), steal: Math.max(...noises.map((noise) => noise.steal)) }
        : undefined,
  }
}

/**
 * Every 2xx must have been a real rotation: the session generations in Redis add up to the
 * 2xx answers, plus at most one per connection and run for requests cut off at the end.
 */
async function rotationsMatch(
  gateway: Gateway,
  sessions: { userId: string; sessionId: string }[],
  { name, report }: Measurement,
): Promise<{ consistent: boolean; rotations: number }> {
  const generations = await Promise.all(
    sessions.map(async ({ userId, sessionId }) => Number((await gateway.redis.hget(`gw:{${userId}}:s:${sessionId}`, 'gen')) ?? NaN)),
  )
  const rotations = generations.reduce((sum, gen) => sum + gen, 0)
  const ok = answered(report)
  const runs = report.warmup ? 2 : 1
  const consistent = rotations >= ok && rotations <= ok + sessions.length * runs
  console.log(`  ${name}: ${rotations} rotations recorded in redis for ${ok} 2xx answers${consistent ? '' : ' (INCONSISTENT)'}`)
  return { consistent, rotations }
}

function buildBareRefresh(sessionTokens: SessionTokens): FastifyInstance {
  const app = Fastify({ logger: false })
  app.post<{ Body: { refreshToken: string } }>('/refresh', async (request) => {
    const tokens = await sessionTokens.refresh(request.body.refreshToken, { channel: 'body', label: 'bench' })
    return {
      status: 'authenticated',
      accessToken: tokens.accessToken,
      tokenType: tokens.tokenType,
      expiresIn: tokens.expiresIn,
      refreshExpiresIn: tokens.refreshExpiresIn,
      refreshToken: tokens.refreshToken,
    }
  })
  return app
}

/** A CPU profile of the servers' thread during the measured run, written to dir and summed up. */
function cpuProfiler(dir: string): Probe {
  const session = new Session()
  let started: Promise<unknown> | undefined
  return {
    start() {
      session.connect()
      started = session
        .post('Profiler.enable')
        .then(() => session.post('Profiler.setSamplingInterval', { interval: 100 }))
        .then(() => session.post('Profiler.start'))
      started.catch(() => {})
    },
    async stop(name: string, report: LoadReport) {
      await started
      const { profile } = await session.post('Profiler.stop')
      session.disconnect()
      await mkdir(dir, { recursive: true })
      const file = join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`)
      await writeFile(file, JSON.stringify(profile))
      printProfile(name, file, profile as CpuProfile, report.measured.total)
    },
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }[]
  startTime: number
  endTime: number
}

/** Self time of the servers' thread by module and by function, in µs per request answered. */
function printProfile(name: string, file: string, profile: CpuProfile, requests: number): void {
  const hits = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0)
  // The profile covers the measured run (it starts when the load generator says so).
  const usPerHit = (profile.endTime - profile.startTime) / Math.max(hits, 1)
  const perRequest = (count: number) => ((count * usPerHit) / Math.max(requests, 1)).toFixed(1).padStart(7)
  const byModule = new Map<string, number>()
  const byFunction = new Map<string, number>()
  for (const node of profile.nodes) {
    const count = node.hitCount ?? 0
    if (count === 0) continue
    const { functionName, url, lineNumber } = node.callFrame
    const module = moduleOf(url, functionName)
    byModule.set(module, (byModule.get(module) ?? 0) + count)
    const where = `${functionName || '(anonymous)'} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`
    byFunction.set(where, (byFunction.get(where) ?? 0) + count)
  }
  const top = (map: Map<string, number>, n: number) => [...map].sort(([, a], [, b]) => b - a).slice(0, n)
  console.log(`
CPU profile of the servers' thread, ${name} (${file}), µs of self time per request:`)
  console.log('  by module:')
  for (const [module, count] of top(byModule, 14)) console.log(`    ${perRequest(count)}  ${module}`)
  console.log('  by function:')
  for (const [where, count] of top(byFunction, 20)) console.log(`    ${perRequest(count)}  ${where}`)
}

/** The repository root as a file: URL, to shorten profile frames of our own files. */
const ROOT = new URL('..', import.meta.url).href

function moduleOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (dependency) return dependency[1]!
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:')
  return url.startsWith(ROOT) ? url.slice(ROOT.length) : url
}

function shortUrl(url: string): string {
  const dependency = url.lastIndexOf('/node_modules/')
  if (dependency >= 0) return url.slice(dependency + '/node_modules/'.length)
  return url.startsWith(ROOT) ? url.slice(ROOT.length) : url
}

interface CommandStat {
  calls: number
  usec: number
}

/** What redis-server did for the gateway runs, summed over them. */
interface RedisUse {
  /**
   * Rotations recorded in Redis, not 2xx answers: they include the requests cut off at the
   * end of each warm-up and measured run, which Redis served all the same (up to one per
   * connection and run: too many to leave out with short runs).
   */
  refreshes: number
  cpuSeconds: number
  commands: Map<string, CommandStat>
}

/** Adds one gateway run's INFO commandstats to the sums. */
function addCommandStats(sums: Map<string, CommandStat>, info: string): void {
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+),/gm)) {
    // The stats reads of this script itself are not the gateway's.
    if (match[1] === 'info' || match[1] === 'config|resetstat') continue
    const sum = sums.get(match[1]!) ?? { calls: 0, usec: 0 }
    sums.set(match[1]!, { calls: sum.calls + Number(match[2]), usec: sum.usec + Number(match[3]) })
  }
}

function printRedisUse({ refreshes, cpuSeconds, commands }: RedisUse): void {
  const perRefresh = (calls: number) => (calls / refreshes).toFixed(2)
  const scriptCalls = ['eval', 'evalsha', 'fcall']
  const scripts = [...commands].filter(([name]) => scriptCalls.includes(name))
  const others = [...commands].filter(([name]) => !scriptCalls.includes(name))
  const describe = (entries: typeof scripts) =>
    entries
      .sort(([, a], [, b]) => b.calls - a.calls)
      .map(([name, stat]) => `${name} ${perRefresh(stat.calls)} x ${(stat.usec / stat.calls).toFixed(1)} µs`)
      .join(', ')
  console.log(`redis per gateway refresh (warm-ups + measured runs of all ${ROUNDS} rounds, ${refreshes} rotations recorded):`)
  console.log(`  script calls: ${describe(scripts) || 'none'}`)
  console.log(`  other commands, inside scripts or direct: ${describe(others) || 'none'}`)
  console.log(`  redis-server CPU: ${((cpuSeconds * 1e6) / refreshes).toFixed(1)} µs per refresh`)
}

await runBench(main)
