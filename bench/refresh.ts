// `npm run bench`: refresh-token rotations per second through the real gateway (real
// redis-server, embedded database, ES256 keys), against a baseline of a bare fastify app
// that only signs one access token with the same key. Goal: gateway/baseline >= 0.5.
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

import { fork, spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { freeLoopbackPort, waitForLoopbackPort } from '../src/loopback.js'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Session } from 'node:inspector/promises'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import * as jose from 'jose'
import { loadConfig } from '../src/config.js'
import { createGateway, type Gateway } from '../src/gateway.js'
import { randomId } from '../src/secrets.js'
import type { SessionTokens } from '../src/sessions/session-tokens.js'
import { AccessTokens } from '../src/tokens/access-tokens.js'
import type { LoadJob, LoadReport, RunFigures } from './load-generator.js'

const SECONDS = readNumber('BENCH_SECONDS', 10, 1)
const WARMUP_SECONDS = readNumber('BENCH_WARMUP_SECONDS', 2, 0)
const CONNECTIONS = Math.floor(readNumber('BENCH_CONNECTIONS', 64, 1))
const PROFILE_DIR = process.env.BENCH_CPU_PROFILE?.trim() || undefined
const REDIS_SOCKET = process.env.BENCH_REDIS_SOCKET === '1'
const SPLIT = process.env.BENCH_SPLIT === '1'
const GOAL = 0.5

interface Measurement {
  name: string
  report: LoadReport
  /** Event-loop utilisation of this (the servers') thread during the measured run. */
  serverThreadBusy: number
  /** CPU time of this process (all its threads) per request answered in the measured run, µs. */
  serverCpuPerRequest: number
  /**
   * CPU used during the measured run by processes other than the servers, redis-server and
   * the load generator, in CPUs (1 = one CPU fully); undefined where /proc/stat is missing.
   */
  othersCpu?: number
}

const cleanups: (() => Promise<unknown> | unknown)[] = []
let cleaningUp: Promise<void> | undefined
function cleanUp(): Promise<void> {
  cleaningUp ??= (async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step()
      } catch (error) {
        console.error('cleanup step failed:', error)
      }
    }
  })()
  return cleaningUp
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)))
}

async function main(): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'gateway-bench-'))
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
  // Last resort if the process dies on an unexpected error: the temp dir must not stay.
  process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }))

  const redis = await startRedis(dataDir, REDIS_SOCKET)
  cleanups.push(() => redis.stop())

  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const jwk = await jose.exportJWK(privateKey)
  jwk.kid = await jose.calculateJwkThumbprint(jwk)
  jwk.alg = 'ES256'

  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    PUBLIC_URL: 'http://127.0.0.1:3000',
    DATA_DIR: dataDir,
    REDIS_URL: REDIS_SOCKET ? redis.socket : redis.url,
    SIGNING_KEYS: JSON.stringify({ keys: [jwk] }),
    LOG_LEVEL: 'warn',
    // 64 connections from one address: far beyond any per-client budget, on purpose.
    RATE_LIMIT_TOKEN: '1000000',
  })
  const gateway = await createGateway(config, false)
  cleanups.push(() => gateway.close())
  const gatewayUrl = await listen(gateway.app)

  const services = gateway.app.gateway
  const baselineTokens = new AccessTokens(services.keys, {
    issuer: config.publicUrl,
    audience: config.tokenAudience,
    ttlSeconds: config.accessTokenTtl,
  })
  const baseline = buildBaseline(baselineTokens)
  cleanups.push(() => baseline.close())
  const baselineUrl = await listen(baseline)

  const startSessions = () =>
    Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        const userId = randomId()
        const tokens = await services.sessionTokens.startSession(userId, { channel: 'body', label: 'bench' })
        return { userId, sessionId: tokens.sessionId, refreshToken: tokens.refreshToken }
      }),
    )
  const job = (url: string, path: string, tokens: string[], rotate: boolean): LoadJob => ({
    url,
    path,
    connections: CONNECTIONS,
    warmupSeconds: WARMUP_SECONDS,
    seconds: SECONDS,
    tokens,
    rotate,
  })
  const redisCpu = () => redisCpuSeconds(gateway)

  console.log(
    `${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s measured per target; ` +
      `node ${process.version}, ${cpus().length} CPUs (servers, redis-server and the load generator share them)`,
  )
  const options = [REDIS_SOCKET && 'redis over a unix socket'].filter(Boolean)
  if (options.length > 0) console.log(`what-if options: ${options.join(', ')}`)

  const sessions = await startSessions()
  console.log(`baseline: bare fastify, POST /token signs one ES256 access token (${baselineUrl})`)
  const placeholder = sessions[0]!.refreshToken
  const base = await measure('baseline (sign only)', job(baselineUrl, '/token', sessions.map(() => placeholder), false), redisCpu)

  const targets: Measurement[] = [base]
  let split: Measurement | undefined
  const inconsistent: string[] = []
  if (SPLIT) {
    // The same refresh service behind a bare fastify route: separates the cost of the
    // gateway's HTTP layer (plugins, schema, hooks) from the cost of the refresh itself.
    const bare = buildBareRefresh(services.sessionTokens)
    cleanups.push(() => bare.close())
    const bareUrl = await listen(bare)
    const bareSessions = await startSessions()
    console.log(`split: bare fastify, POST /refresh calls the gateway's sessionTokens.refresh (${bareUrl})`)
    split = await measure('bare fastify + refresh', job(bareUrl, '/refresh', bareSessions.map((session) => session.refreshToken), true), redisCpu)
    if (!(await rotationsMatch(gateway, bareSessions, split))) inconsistent.push(split.name)
    targets.push(split)
  }

  console.log(`gateway: POST /auth/token { refreshToken }, one session per connection (${gatewayUrl})`)
  await gateway.redis.config('RESETSTAT')
  const redisCpuBefore = await redisCpu()
  const refresh = await measure('gateway refresh', job(gatewayUrl, '/auth/token', sessions.map((session) => session.refreshToken), true), redisCpu)
  const redisCpuUsed = (await redisCpu()) - redisCpuBefore
  const commandStats = parseCommandStats(await gateway.redis.info('commandstats'))
  if (!(await rotationsMatch(gateway, sessions, refresh))) inconsistent.push(refresh.name)
  targets.push(refresh)

  printTable(targets)
  const busiest = Math.max(...targets.map((target) => target.othersCpu ?? 0))
  if (busiest > 0.1) {
    console.log(
      `\nnote: other processes on this machine used up to ${(busiest * 100).toFixed(0)} % of one CPU during a measured run; ` +
        'they competed with the bench, so req/s (and the ratio) are noisy: run again on a quieter machine',
    )
  }
  const ratio = refresh.report.measured.requestsPerSecond / base.report.measured.requestsPerSecond
  console.log(`\nratio gateway_rps / baseline_rps = ${ratio.toFixed(3)}   (goal: ratio >= ${GOAL})`)
  const cpuRatio = base.serverCpuPerRequest / refresh.serverCpuPerRequest
  console.log(
    `cost ratio baseline_cpu / gateway_cpu = ${cpuRatio.toFixed(3)}   ` +
      '(server-process CPU per request; steadier than req/s when other processes compete for the CPUs)',
  )
  if (split) {
    const cpu = (measurement: Measurement) => measurement.serverCpuPerRequest
    console.log(
      `split of the extra CPU per request (gateway - baseline = ${(cpu(refresh) - cpu(base)).toFixed(0)} µs): ` +
        `refresh service ${(cpu(split) - cpu(base)).toFixed(0)} µs, gateway HTTP layer ${(cpu(refresh) - cpu(split)).toFixed(0)} µs`,
    )
  }

  const refreshes = (refresh.report.warmup?.ok ?? 0) + refresh.report.measured.ok
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

  const failures = targets.filter(({ report }) => [report.warmup, report.measured].some((run) => run && failed(run)))
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
  const answered = (report.warmup?.ok ?? 0) + report.measured.ok
  const runs = report.warmup ? 2 : 1
  const consistent = rotations >= answered && rotations <= answered + sessions.length * runs
  console.log(`  ${name}: ${rotations} rotations recorded in redis for ${answered} 2xx answers${consistent ? '' : ' (INCONSISTENT)'}`)
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

function buildBaseline(accessTokens: AccessTokens): FastifyInstance {
  const app = Fastify({ logger: false })
  const subject = { userId: randomId(), sessionId: randomId() }
  app.post('/token', async () => {
    const { accessToken, expiresIn } = await accessTokens.issue(subject)
    return { accessToken, tokenType: 'Bearer', expiresIn }
  })
  return app
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address')
  return `http://127.0.0.1:${address.port}`
}

async function measure(name: string, job: LoadJob, redisCpuSeconds: () => Promise<number>): Promise<Measurement> {
  const child = fork(new URL('./load-generator.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  let loopFrom = performance.eventLoopUtilization()
  let cpuFrom = process.cpuUsage()
  let machineFrom: Promise<[MachineCpu | undefined, number]> | undefined
  const profiler = PROFILE_DIR ? new Session() : undefined
  let profiling: Promise<unknown> | undefined
  try {
    const report = await new Promise<LoadReport>((resolve, reject) => {
      child.on('message', (message: LoadReport | { measuring: true }) => {
        if ('measured' in message) return resolve(message)
        try {
          // The warm-up is over: measure this process from here on.
          loopFrom = performance.eventLoopUtilization()
          cpuFrom = process.cpuUsage()
          machineFrom = Promise.all([machineCpu(), redisCpuSeconds()])
          machineFrom.catch(() => {})
          if (profiler) {
            profiler.connect()
            profiling = profiler
              .post('Profiler.enable')
              .then(() => profiler.post('Profiler.setSamplingInterval', { interval: 100 }))
              .then(() => profiler.post('Profiler.start'))
            profiling.catch(() => {})
          }
        } catch (error) {
          reject(error)
        }
      })
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`the load generator exited (code ${code}) without a report`)))
      child.send(job)
    })
    const busy = performance.eventLoopUtilization(loopFrom).utilization
    const cpu = process.cpuUsage(cpuFrom)
    const serverCpuPerRequest = (cpu.user + cpu.system) / Math.max(report.measured.total, 1)
    const [machineBefore, redisBefore] = (await machineFrom) ?? [undefined, 0]
    const [machineAfter, redisAfter] = await Promise.all([machineCpu(), redisCpuSeconds()])
    let othersCpu: number | undefined
    if (machineBefore && machineAfter) {
      const wallSeconds = (machineAfter.at - machineBefore.at) / 1000
      const ours = (cpu.user + cpu.system + report.measuredCpuMicros) / 1e6 + (redisAfter - redisBefore)
      othersCpu = Math.max(0, (machineAfter.busySeconds - machineBefore.busySeconds - ours) / wallSeconds)
    }
    if (profiler && profiling) {
      await profiling
      const { profile } = await profiler.post('Profiler.stop')
      profiler.disconnect()
      await mkdir(PROFILE_DIR!, { recursive: true })
      const file = join(PROFILE_DIR!, `${name.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`)
      await writeFile(file, JSON.stringify(profile))
      printProfile(name, file, profile as CpuProfile, report.measured.total)
    }
    return { name, report, serverThreadBusy: busy, serverCpuPerRequest, othersCpu }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}

interface MachineCpu {
  /** CPU seconds spent by all processes since boot (all CPUs). */
  busySeconds: number
  at: number
}

/** Linux only; undefined elsewhere. */
async function machineCpu(): Promise<MachineCpu | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!
    // cpu  user nice system idle iowait irq softirq steal ...
    const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number)
    return { busySeconds: (user! + nice! + system! + irq! + softirq!) / 100, at: Date.now() }
  } catch {
    return undefined
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

function failed(run: RunFigures): boolean {
  return run.non2xx > 0 || run.errors > 0 || run.timeouts > 0 || run.ok === 0
}

function printTable(rows: Measurement[]): void {
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'requests', 'non-2xx', 'errors', 'server thread busy', 'server CPU µs/req', 'other processes']
  const lines = rows.map(({ name, report: { measured: m }, serverThreadBusy, serverCpuPerRequest, othersCpu }) => [
    name,
    m.requestsPerSecond.toFixed(0),
    m.latencyP50.toFixed(1),
    m.latencyP99.toFixed(1),
    String(m.total),
    String(m.non2xx),
    String(m.errors + m.timeouts),
    `${(serverThreadBusy * 100).toFixed(0)} %`,
    serverCpuPerRequest.toFixed(0),
    othersCpu === undefined ? 'n/a' : `${(othersCpu * 100).toFixed(0)} % CPU`,
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)))
  const format = (cells: string[]) =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  console.log()
  console.log(format(header))
  console.log(widths.map((width) => '-'.repeat(width)).join('  '))
  for (const line of lines) console.log(format(line))
}

async function redisCpuSeconds(gateway: Gateway): Promise<number> {
  const info = await gateway.redis.info('cpu')
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0)
  const system = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0)
  return user + system
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

interface RunningRedis {
  url: string
  /** The unix socket path (only when started with one). */
  socket: string
  stop(): Promise<void>
}

/** A throw-away redis-server: no persistence, noeviction (the gateway refuses anything else). */
async function startRedis(dir: string, withSocket: boolean): Promise<RunningRedis> {
  const port = await freeLoopbackPort()
  const socket = join(dir, 'redis.sock')
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction']
  if (withSocket) args.push('--unixsocket', socket, '--unixsocketperm', '700')
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error('redis-server is not installed (apt-get install redis-server)') : error),
    )
    child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code} during start-up`)))
  })
  failed.catch(() => {})
  await Promise.race([failed, waitForLoopbackPort(port, 'redis-server')])
  return {
    url: `redis://127.0.0.1:${port}`,
    socket,
    async stop() {
      process.removeListener('exit', killOnExit)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}

function readNumber(name: string, fallback: number, min: number): number {
  const raw = process.env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`)
  return value
}

let exitCode = 1
try {
  exitCode = await main()
} catch (error) {
  console.error('bench failed:', error)
} finally {
  await cleanUp()
}
process.exitCode = exitCode
