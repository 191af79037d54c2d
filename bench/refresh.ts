// `npm run bench`: refresh-token rotations per second through the real gateway (real
// redis-server, embedded database, ES256 keys), against a baseline of a bare fastify app
// that only signs one access token with the same key. Goal: gateway/baseline >= 0.7, p99 <= 25 ms.
//
//   BENCH_SECONDS=10         measured seconds per target
//   BENCH_WARMUP_SECONDS=2   unmeasured warm-up per target (0: none)
//   BENCH_CONNECTIONS=64     concurrent connections, one refresh session each
//   BENCH_SPLIT=1            add a third target: the gateway's refresh service behind a bare
//                            fastify route, to split the gap into HTTP layer and refresh
//   BENCH_CPU_PROFILE=dir    also CPU-profile the servers' thread during each measured run:
//                            writes <dir>/<target>.cpuprofile and prints where the time goes
// What-if knobs (for comparing deployment/implementation options, off by default):
//   BENCH_REDIS_SOCKET=1     the gateway reaches redis-server over a unix socket, not TCP
//                            (read per command, so it can be flipped at run time)
//
// Exits non-zero when any request failed (a benchmark of 401s is meaningless); the ratio
// itself is reported, never asserted. See bench/README.md.

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
  onCleanUp,
  printSetup,
  printTable,
  readLoadSettings,
  redisCpuSeconds,
  runBench,
  serve,
  startRedis,
  startGateway,
  startSessions,
  tempDir,
  type Measurement,
  type Probe,
} from './harness.js'
import type { LoadReport } from './load-generator.js'

const SETTINGS = readLoadSettings(10)
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

  const startBenchSessions = () => startSessions(services.sessionTokens, SETTINGS.connections)
  const job = (url: string, path: string, tokens: string[], rotate: boolean) => loadJob(SETTINGS, url, path, tokens, rotate)
  const redisCpu = () => redisCpuSeconds(gateway.redis)
  // A new profiler per measured run; none unless BENCH_CPU_PROFILE is set.
  const options = () => ({ redisCpuSeconds: redisCpu, probe: PROFILE_DIR ? cpuProfiler(PROFILE_DIR) : undefined })

  printSetup(SETTINGS)
  const whatIfs = [REDIS_SOCKET && 'redis over a unix socket'].filter(Boolean)
  if (whatIfs.length > 0) console.log(`what-if options: ${whatIfs.join(', ')}`)

  const sessions = await startBenchSessions()
  console.log(`baseline: bare fastify, POST /token signs one ES256 access token (${baselineUrl})`)
  const placeholder = sessions[0]!.refreshToken
  const base = await measure('baseline (sign only)', job(baselineUrl, '/token', sessions.map(() => placeholder), false), options())

  const targets: Measurement[] = [base]
  let split: Measurement | undefined
  const inconsistent: string[] = []
  if (SPLIT) {
    // The same refresh service behind a bare fastify route: separates the cost of the
    // gateway's HTTP layer (plugins, schema, hooks) from the cost of the refresh itself.
    const bareUrl = await serve(buildBareRefresh(services.sessionTokens))
    const bareSessions = await startBenchSessions()
    console.log(`split: bare fastify, POST /refresh calls the gateway's sessionTokens.refresh (${bareUrl})`)
    split = await measure('bare fastify + refresh', job(bareUrl, '/refresh', bareSessions.map((session) => session.refreshToken), true), options())
    if (!(await rotationsMatch(gateway, bareSessions, split))) inconsistent.push(split.name)
    targets.push(split)
  }

  console.log(`gateway: POST /auth/token { refreshToken }, one session per connection (${gatewayUrl})`)
  await gateway.redis.config('RESETSTAT')
  const redisCpuBefore = await redisCpu()
  const refresh = await measure('gateway refresh', job(gatewayUrl, '/auth/token', sessions.map((session) => session.refreshToken), true), options())
  const redisCpuUsed = (await redisCpu()) - redisCpuBefore
  const commandStats = parseCommandStats(await gateway.redis.info('commandstats'))
  if (!(await rotationsMatch(gateway, sessions, refresh))) inconsistent.push(refresh.name)
  targets.push(refresh)

  printTable(targets, [columns.serverThreadBusy, columns.serverCpuPerRequest, columns.otherProcesses])
  const busiest = Math.max(...targets.map((target) => target.noise?.others ?? 0))
  if (busiest > 0.1) {
    console.log(
      `\nnote: other processes on this machine used up to ${(busiest * 100).toFixed(0)} % of one CPU during a measured run; ` +
        'they competed with the bench, so req/s (and the ratio) are noisy: run again on a quieter machine',
    )
  }
  const ratio = refresh.report.measured.requestsPerSecond / base.report.measured.requestsPerSecond
  console.log(`\nratio gateway_rps / baseline_rps = ${ratio.toFixed(3)}   (goal: ratio >= ${GOAL})`)
  const cpuRatio = base.cpuPerRequest / refresh.cpuPerRequest
  console.log(
    `cost ratio baseline_cpu / gateway_cpu = ${cpuRatio.toFixed(3)}   ` +
      '(server-process CPU per request; steadier than req/s when other processes compete for the CPUs)',
  )
  if (split) {
    const cpu = (measurement: Measurement) => measurement.cpuPerRequest
    console.log(
      `split of the extra CPU per request (gateway - baseline = ${(cpu(refresh) - cpu(base)).toFixed(0)} µs): ` +
        `refresh service ${(cpu(split) - cpu(base)).toFixed(0)} µs, gateway HTTP layer ${(cpu(refresh) - cpu(split)).toFixed(0)} µs`,
    )
  }

  const refreshes = answered(refresh.report)
  const perRefresh = (calls: number) => (calls / refreshes).toFixed(2)
  const scriptCalls = ['eval', 'evalsha', 'fcall']
  const scripts = Object.entries(commandStats).filter(([name]) => scriptCalls.includes(name))
  const others = Object.entries(commandStats).filter(([name]) => !scriptCalls.includes(name))
  const describe = (entries: typeof scripts) =>
    entries
      .sort(([, a], [, b]) => b.calls - a.calls)
      .map(([name, stat]) => `${name} ${perRefresh(stat.calls)} x ${stat.usecPerCall.toFixed(1)} µs`)
      .join(', ')
  console.log(`redis per gateway refresh (warm-up + measured run, ${refreshes} refreshes):`)
  console.log(`  script calls: ${describe(scripts) || 'none'}`)
  console.log(`  other commands, inside scripts or direct: ${describe(others) || 'none'}`)
  console.log(`  redis-server CPU: ${((redisCpuUsed * 1e6) / refreshes).toFixed(1)} µs per refresh`)

  const failures = targets.filter(({ report }) => hasFailures(report))
  for (const { name, report } of failures) {
    console.error(`\nFAILED: ${name} had failed requests (warm-up and measured runs):`)
    for (const run of [report.warmup, report.measured]) {
      if (run) console.error(`  status codes ${JSON.stringify(run.statusCodes)}, ${run.errors} connection errors, ${run.timeouts} timeouts`)
    }
    for (const sample of report.failureSamples) console.error(`  ${sample}`)
  }
  for (const name of inconsistent) console.error(`\nFAILED: ${name}: the rotations recorded in redis do not match the 2xx answers`)
  return failures.length > 0 || inconsistent.length > 0 ? 1 : 0
}

/**
 * Every 2xx must have been a real rotation: the session generations in Redis add up to the
 * 2xx answers, plus at most one per connection and run for requests cut off at the end.
 */
async function rotationsMatch(
  gateway: Gateway,
  sessions: { userId: string; sessionId: string }[],
  { name, report }: Measurement,
): Promise<boolean> {
  const generations = await Promise.all(
    sessions.map(async ({ userId, sessionId }) => Number((await gateway.redis.hget(`gw:{${userId}}:s:${sessionId}`, 'gen')) ?? NaN)),
  )
  const rotations = generations.reduce((sum, gen) => sum + gen, 0)
  const ok = answered(report)
  const runs = report.warmup ? 2 : 1
  const consistent = rotations >= ok && rotations <= ok + sessions.length * runs
  console.log(`  ${name}: ${rotations} rotations recorded in redis for ${ok} 2xx answers${consistent ? '' : ' (INCONSISTENT)'}`)
  return consistent
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

function parseCommandStats(info: string): Record<string, { calls: number; usecPerCall: number }> {
  const stats: Record<string, { calls: number; usecPerCall: number }> = {}
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/gm)) {
    // The stats reads of this script itself are not the gateway's.
    if (match[1] === 'info' || match[1] === 'config|resetstat') continue
    stats[match[1]!] = { calls: Number(match[2]), usecPerCall: Number(match[3]) }
  }
  return stats
}

await runBench(main)
