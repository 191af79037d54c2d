// What the benchmarks (bench/refresh.ts, bench/verifier.ts) share: settings from the
// environment, a cleanup registry run on exit and on SIGINT/SIGTERM, a temp data dir, the
// real gateway on loopback with a fresh ES256 key, one session per connection, servers on
// free ports, one measured target through the load generator (bench/load-generator.ts,
// in a child process) with the servers' CPU and the machine's noise, the results table,
// the failure checks and the main/exit-code wrapper. Each benchmark keeps only its targets,
// its ratios and its own consistency checks.

import { fork, spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import * as jose from 'jose'
import { loadConfig, type Config } from '../src/config.js'
import { createGateway, type Gateway } from '../src/gateway.js'
import { freeLoopbackPort, waitForLoopbackPort } from '../src/common/loopback.js'
import { randomId } from '../src/common/secrets.js'
import type { SessionTokens, TokenSet } from '../src/sessions/session-tokens.js'
import type { RedisClient } from '../src/storage/redis.js'
import type { AccessTokens } from '../src/tokens/access-tokens.js'
import type { LoadJob, LoadReport, RunFigures } from './load-generator.js'

// ---- settings ----

export function readNumber(name: string, fallback: number, min: number): number {
  const raw = process.env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`)
  return value
}

export interface LoadSettings {
  /** BENCH_SECONDS: measured seconds per target. */
  seconds: number
  /** BENCH_WARMUP_SECONDS: unmeasured warm-up per target (0: none). */
  warmupSeconds: number
  /** BENCH_CONNECTIONS: concurrent connections. */
  connections: number
}

export function readLoadSettings(defaultSeconds: number): LoadSettings {
  return {
    seconds: readNumber('BENCH_SECONDS', defaultSeconds, 1),
    warmupSeconds: readNumber('BENCH_WARMUP_SECONDS', 2, 0),
    connections: Math.floor(readNumber('BENCH_CONNECTIONS', 64, 1)),
  }
}

export function loadJob(settings: LoadSettings, url: string, path: string, tokens: string[], rotate: boolean): LoadJob {
  const { connections, warmupSeconds, seconds } = settings
  return { url, path, connections, warmupSeconds, seconds, tokens, rotate }
}

export function printSetup({ connections, warmupSeconds, seconds }: LoadSettings): void {
  console.log(
    `${connections} connections, ${warmupSeconds} s warm-up + ${seconds} s measured per target; ` +
      `node ${process.version}, ${cpus().length} CPUs (servers, redis-server and the load generator share them)`,
  )
}

// ---- cleanup and the main wrapper ----

const cleanups: (() => unknown)[] = []
let cleaningUp: Promise<void> | undefined

/** Registers a step for cleanUp; the steps run in reverse order of registration. */
export function onCleanUp(step: () => unknown): void {
  cleanups.push(step)
}

export function cleanUp(): Promise<void> {
  cleaningUp ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) {
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

/** Runs main, cleans up whatever happened, and sets the exit code (1 when main threw). */
export async function runBench(main: () => Promise<number>): Promise<void> {
  let exitCode = 1
  try {
    exitCode = await main()
  } catch (error) {
    console.error('bench failed:', error)
  } finally {
    await cleanUp()
  }
  process.exitCode = exitCode
}

/** A temp dir, removed on cleanup (and on exit, should the process die on an unexpected error). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  onCleanUp(() => rm(dir, { recursive: true, force: true }))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// ---- servers ----

export interface RunningGateway {
  gateway: Gateway
  config: Config
  url: string
}

/**
 * The real gateway from createGateway, logging off, its embedded database in dataDir and a
 * freshly generated ES256 signing key, listening on a free loopback port (PUBLIC_URL says
 * which); closed on cleanup. env adds or overrides settings.
 */
export async function startGateway(dataDir: string, redisUrl: string, env: Record<string, string> = {}): Promise<RunningGateway> {
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const jwk = await jose.exportJWK(privateKey)
  jwk.kid = await jose.calculateJwkThumbprint(jwk)
  jwk.alg = 'ES256'
  const port = await freeLoopbackPort()
  const url = `http://127.0.0.1:${port}`
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: url,
    DATA_DIR: dataDir,
    REDIS_URL: redisUrl,
    SIGNING_KEYS: JSON.stringify({ keys: [jwk] }),
    LOG_LEVEL: 'warn',
    ...env,
  })
  const gateway = await createGateway(config, false)
  onCleanUp(() => gateway.close())
  await gateway.app.listen({ host: '127.0.0.1', port })
  return { gateway, config, url }
}

/** One fresh session per connection (refresh needs no database user). */
export function startSessions(sessionTokens: SessionTokens, count: number): Promise<(TokenSet & { userId: string })[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const userId = randomId()
      return { userId, ...(await sessionTokens.startSession(userId, { channel: 'body', label: 'bench' })) }
    }),
  )
}

/** The baseline: a bare fastify app whose one route, POST /token, signs one access token with the gateway's own class and keys. */
export function buildBaseline(accessTokens: AccessTokens): FastifyInstance {
  const app = Fastify({ logger: false })
  const subject = { userId: randomId(), sessionId: randomId() }
  app.post('/token', async () => {
    const { accessToken, expiresIn } = await accessTokens.issue(subject)
    return { accessToken, tokenType: 'Bearer', expiresIn }
  })
  return app
}

/** Listens on a free loopback port, closed on cleanup; resolves to the app's base URL. */
export async function serve(app: FastifyInstance): Promise<string> {
  onCleanUp(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address')
  return `http://127.0.0.1:${address.port}`
}

/** CPU seconds redis-server has used since it started (from INFO cpu). */
export async function redisCpuSeconds(redis: RedisClient): Promise<number> {
  const info = await redis.info('cpu')
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0)
  const system = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0)
  return user + system
}

// ---- measuring ----

export interface Measurement {
  name: string
  report: LoadReport
  /** Event-loop utilisation of this (the servers') thread during the measured run. */
  serverThreadBusy: number
  /** CPU time of this process (all its threads) per request of the measured run, µs. */
  cpuPerRequest: number
  /**
   * CPU used during the measured run by processes other than the servers, redis-server and
   * the load generator, and stolen by the hypervisor, in CPUs (1 = one CPU fully);
   * undefined where /proc/stat is missing.
   */
  noise?: { others: number; steal: number }
}

/** Something more to record about the measured run only (a CPU profile, say). */
export interface Probe {
  /** The warm-up is over: called when the measured run starts. */
  start(): void
  /** The measured run is over (only called after start). */
  stop(name: string, report: LoadReport): Promise<void>
}

export interface MeasureOptions {
  /** redis-server's CPU seconds so far, to leave them out of the other processes' CPU. */
  redisCpuSeconds: () => Promise<number>
  probe?: Probe
}

/** Runs one job in the load generator's own process; measures this process's CPU during the measured run. */
export async function measure(name: string, job: LoadJob, { redisCpuSeconds, probe }: MeasureOptions): Promise<Measurement> {
  const child = fork(new URL('./load-generator.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  let loopFrom = performance.eventLoopUtilization()
  let cpuFrom = process.cpuUsage()
  let machineFrom: Promise<[MachineCpu | undefined, number]> = Promise.resolve([undefined, 0])
  let probing = false
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
          if (probe) {
            probe.start()
            probing = true
          }
        } catch (error) {
          reject(error)
        }
      })
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`the load generator exited (code ${code}) without a report`)))
      child.send(job)
    })
    const serverThreadBusy = performance.eventLoopUtilization(loopFrom).utilization
    const cpu = process.cpuUsage(cpuFrom)
    const cpuPerRequest = (cpu.user + cpu.system) / Math.max(report.measured.total, 1)
    const [[machineBefore, redisBefore], machineAfter, redisAfter] = await Promise.all([machineFrom, machineCpu(), redisCpuSeconds()])
    let noise: Measurement['noise']
    if (machineBefore && machineAfter) {
      const wallSeconds = (machineAfter.at - machineBefore.at) / 1000
      const ours = (cpu.user + cpu.system + report.measuredCpuMicros) / 1e6 + (redisAfter - redisBefore)
      noise = {
        others: Math.max(0, machineAfter.busySeconds - machineBefore.busySeconds - ours) / wallSeconds,
        steal: (machineAfter.stealSeconds - machineBefore.stealSeconds) / wallSeconds,
      }
    }
    if (probe && probing) await probe.stop(name, report)
    return { name, report, serverThreadBusy, cpuPerRequest, noise }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}

interface MachineCpu {
  /** CPU seconds since boot, all CPUs: busy (all processes), and stolen by the hypervisor. */
  busySeconds: number
  stealSeconds: number
  at: number
}

/** Linux only; undefined elsewhere. */
async function machineCpu(): Promise<MachineCpu | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!
    // cpu  user nice system idle iowait irq softirq steal ...
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    return { busySeconds: (user! + nice! + system! + irq! + softirq!) / 100, stealSeconds: steal! / 100, at: Date.now() }
  } catch {
    return undefined
  }
}

// ---- results ----

/** The warm-up (if any) and the measured run. */
export function runsOf(report: LoadReport): RunFigures[] {
  return [report.warmup, report.measured].filter((run): run is RunFigures => run !== undefined)
}

/** Any non-2xx answer, connection error or timeout, or no 2xx at all, in any run. */
export function hasFailures(report: LoadReport): boolean {
  return runsOf(report).some((run) => run.non2xx > 0 || run.errors > 0 || run.timeouts > 0 || run.ok === 0)
}

/** 2xx answers in the warm-up and the measured run. */
export function answered(report: LoadReport): number {
  return (report.warmup?.ok ?? 0) + report.measured.ok
}

export interface Column {
  title: string
  cell(row: Measurement): string
}

const percentOfCpu = (cpus?: number) => (cpus === undefined ? 'n/a' : `${(cpus * 100).toFixed(0)} % CPU`)

/** How far `to` is from `from`, in percent of `from`. */
export function percentChange(from: number, to: number): number {
  return ((to - from) / from) * 100
}

/** The middle value; for an even count, the mean of the two middle ones. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Columns a benchmark may add to the table, after the load generator's figures. */
export const columns = {
  serverThreadBusy: { title: 'server thread busy', cell: (row) => `${(row.serverThreadBusy * 100).toFixed(0)} %` },
  serverCpuPerRequest: { title: 'server CPU µs/req', cell: (row) => row.cpuPerRequest.toFixed(0) },
  otherProcesses: { title: 'other processes', cell: (row) => percentOfCpu(row.noise?.others) },
  steal: { title: 'steal', cell: (row) => percentOfCpu(row.noise?.steal) },
} satisfies Record<string, Column>

/** One row per target: the measured run's figures, then the given columns. */
export function printTable(rows: Measurement[], extra: Column[]): void {
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'requests', 'non-2xx', 'errors', ...extra.map((column) => column.title)]
  const lines = rows.map((row) => {
    const m = row.report.measured
    return [
      row.name,
      m.requestsPerSecond.toFixed(0),
      m.latencyP50.toFixed(1),
      m.latencyP99.toFixed(1),
      String(m.total),
      String(m.non2xx),
      String(m.errors + m.timeouts),
      ...extra.map((column) => column.cell(row)),
    ]
  })
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)))
  const format = (cells: string[]) =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  console.log()
  console.log(format(header))
  console.log(widths.map((width) => '-'.repeat(width)).join('  '))
  for (const line of lines) console.log(format(line))
}

export interface RunningRedis {
  url: string
  /** The unix socket path (only when started with one). */
  socket: string
  stop(): Promise<void>
}

/** A throw-away redis-server: no persistence, noeviction (the gateway refuses anything else). */
export async function startRedis(dir: string, withSocket = false): Promise<RunningRedis> {
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
