// Verifications per second of the verifier plugin (verifier/), with revocation checking
// off and on (one Redis EXISTS per request), against a bare fastify route doing one
// jose.jwtVerify with a local key set, in the same run. Real gateway (embedded database,
// real redis-server), real ES256 access tokens of real sessions, all on 127.0.0.1.
//
//   node --import tsx bench/verifier.ts
//   BENCH_SECONDS=8  BENCH_WARMUP_SECONDS=2  BENCH_CONNECTIONS=64   (about 35 s in all)
//
// The load generator is bench/load-generator.ts, which POSTs `{ "refreshToken": <token> }`.
// Every target therefore takes the token from that body into the Authorization header in
// a preValidation hook (the same cost for all three) and then verifies it as a resource
// server would. Exits non-zero when any request failed: a benchmark of 401s is meaningless.

import { fork } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import * as jose from 'jose'
import { loadConfig } from '../src/config.js'
import { createGateway } from '../src/gateway.js'
import { freeLoopbackPort } from '../src/loopback.js'
import { randomId } from '../src/secrets.js'
import { startLocalRedis } from '../src/storage/local-redis.js'
import { accessTokenVerifier, type VerifierOptions } from '../verifier/index.js'
import type { LoadJob, LoadReport, RunFigures } from './load-generator.js'

const SECONDS = readNumber('BENCH_SECONDS', 8, 1)
const WARMUP_SECONDS = readNumber('BENCH_WARMUP_SECONDS', 2, 0)
const CONNECTIONS = Math.floor(readNumber('BENCH_CONNECTIONS', 64, 1))

interface Measurement {
  name: string
  report: LoadReport
  /** CPU time of this process (all servers' threads) per request of the measured run, µs. */
  cpuPerRequest: number
  /** CPUs used during the measured run by other processes, and stolen by the hypervisor (1 = one CPU). */
  noise?: { others: number; steal: number }
}

const cleanups: (() => unknown)[] = []
async function cleanUp(): Promise<void> {
  for (const step of cleanups.splice(0).reverse()) {
    try {
      await step()
    } catch (error) {
      console.error('cleanup step failed:', error)
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)))

async function main(): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'verifier-bench-'))
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }))
  process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }))
  const localRedis = await startLocalRedis(dataDir)
  cleanups.push(() => localRedis.stop())

  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'bench-key', alg: 'ES256' }
  const port = await freeLoopbackPort()
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    REDIS_URL: localRedis.url,
    SIGNING_KEYS: JSON.stringify({ keys: [jwk] }),
    LOG_LEVEL: 'warn',
  })
  const gateway = await createGateway(config, false)
  cleanups.push(() => gateway.close())
  await gateway.app.listen({ host: '127.0.0.1', port })
  const { sessionTokens, keys } = gateway.app.gateway

  // One real session and access token per connection.
  const tokens = await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => (await sessionTokens.startSession(randomId(), { channel: 'body', label: 'bench' })).accessToken),
  )

  // The resource server's own client of the gateway's Redis, configured as the plugin advises.
  const redis = new Redis(localRedis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, enableAutoPipelining: true, lazyConnect: true })
  await redis.connect()
  cleanups.push(() => redis.disconnect())

  const issuer = config.publicUrl
  const audience = config.tokenAudience
  const bare = await listen(bareJwtVerify(jose.createLocalJWKSet(keys.jwks), issuer, audience), cleanups)
  const off = await listen(await protectedApp({ issuer, audience }), cleanups)
  const on = await listen(await protectedApp({ issuer, audience, revocation: { redis } }), cleanups)

  console.log(
    `${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s measured per target; ` +
      `node ${process.version}, ${cpus().length} CPUs (servers, redis-server and the load generator share them)`,
  )
  const job = (url: string): LoadJob => ({ url, path: '/orders', connections: CONNECTIONS, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS, tokens, rotate: false })
  const redisCpu = async () => {
    const info = await redis.info('cpu')
    return Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0) + Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0)
  }
  const targets: Measurement[] = []
  targets.push(await measure('bare jwtVerify', job(bare), redisCpu))
  targets.push(await measure('verifier, revocation off', job(off), redisCpu))
  await redis.config('RESETSTAT')
  targets.push(await measure('verifier, revocation on', job(on), redisCpu))
  const exists = Number(/^cmdstat_exists:calls=(\d+)/m.exec(await redis.info('commandstats'))?.[1] ?? 0)

  printTable(targets)
  const [base, withoutRevocation, withRevocation] = targets as [Measurement, Measurement, Measurement]
  const rps = (m: Measurement) => m.report.measured.requestsPerSecond
  console.log()
  console.log(`verifier (revocation off) / bare jwtVerify: ${(rps(withoutRevocation) / rps(base)).toFixed(3)} of the req/s, ${(withoutRevocation.cpuPerRequest / base.cpuPerRequest).toFixed(2)}x the CPU per request`)
  console.log(`verifier (revocation on)  / bare jwtVerify: ${(rps(withRevocation) / rps(base)).toFixed(3)} of the req/s, ${(withRevocation.cpuPerRequest / base.cpuPerRequest).toFixed(2)}x the CPU per request`)
  console.log(`revocation on / off:                        ${(rps(withRevocation) / rps(withoutRevocation)).toFixed(3)} of the req/s`)
  const noisiest = Math.max(...targets.map(({ noise }) => (noise?.others ?? 0) + (noise?.steal ?? 0)))
  if (noisiest > 0.1) {
    console.log(
      `note: up to ${(noisiest * 100).toFixed(0)} % of a CPU went to other processes or the hypervisor during a measured run; ` +
        'req/s figures are noisy, CPU per request is steadier: run again on a quieter machine',
    )
  }

  let ok = true
  for (const { name, report } of targets) {
    const runs = [report.warmup, report.measured].filter((run): run is RunFigures => run !== undefined)
    if (runs.some((run) => run.non2xx > 0 || run.errors > 0 || run.timeouts > 0 || run.ok === 0)) {
      ok = false
      console.error(`\nFAILED: ${name} had failed requests: ${runs.map((run) => JSON.stringify(run.statusCodes)).join(' ')}`)
      for (const sample of report.failureSamples) console.error(`  ${sample}`)
    }
  }
  // Proof that revocation on really asked Redis once per request answered.
  const answered = (withRevocation.report.warmup?.ok ?? 0) + withRevocation.report.measured.ok
  console.log(`redis EXISTS calls during revocation on: ${exists} for ${answered} 2xx answers`)
  if (exists < answered) {
    ok = false
    console.error('FAILED: fewer EXISTS calls than answers: revocation was not checked on every request')
  }
  return ok ? 0 : 1
}

/** The baseline: what any resource server must do at least, one jwtVerify with the same checks. */
function bareJwtVerify(keySet: jose.JWTVerifyGetKey, issuer: string, audience: string): FastifyInstance {
  const app = Fastify({ logger: false })
  app.addHook('preValidation', bearerFromBody)
  app.post('/orders', async (request, reply) => {
    const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    try {
      const { payload } = await jose.jwtVerify(token ?? '', keySet, { issuer, audience, algorithms: ['ES256', 'EdDSA'], typ: 'at+jwt' })
      return { sub: payload.sub }
    } catch {
      return reply.code(401).send({ error: 'invalid_token' })
    }
  })
  return app
}

async function protectedApp(options: VerifierOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.addHook('preValidation', bearerFromBody)
  await app.register(accessTokenVerifier, options)
  app.post('/orders', { preHandler: app.authenticate }, async (request) => ({ sub: request.accessToken!.sub }))
  return app
}

/** bench/load-generator.ts sends the token as `{ refreshToken }`; put it where a client would. */
async function bearerFromBody(request: FastifyRequest): Promise<void> {
  request.headers.authorization = `Bearer ${(request.body as { refreshToken: string }).refreshToken}`
}

async function listen(app: FastifyInstance, cleanupList: (() => unknown)[]): Promise<string> {
  cleanupList.push(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address')
  return `http://127.0.0.1:${address.port}`
}

/** Runs one job in the load generator's own process; measures this process's CPU during the measured run. */
async function measure(name: string, job: LoadJob, redisCpuSeconds: () => Promise<number>): Promise<Measurement> {
  const child = fork(new URL('./load-generator.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  let cpuFrom = process.cpuUsage()
  let machineFrom: Promise<[MachineCpu | undefined, number]> = Promise.resolve([undefined, 0])
  try {
    const report = await new Promise<LoadReport>((resolve, reject) => {
      child.on('message', (message: LoadReport | { measuring: true }) => {
        if ('measured' in message) return resolve(message)
        // The warm-up is over: measure from here on.
        cpuFrom = process.cpuUsage()
        machineFrom = Promise.all([machineCpu(), redisCpuSeconds()])
        machineFrom.catch(() => {})
      })
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`the load generator exited (code ${code}) without a report`)))
      child.send(job)
    })
    const cpu = process.cpuUsage(cpuFrom)
    const [[machineBefore, redisBefore], machineAfter, redisAfter] = await Promise.all([machineFrom, machineCpu(), redisCpuSeconds()])
    let noise: Measurement['noise']
    if (machineBefore && machineAfter) {
      const wall = (machineAfter.at - machineBefore.at) / 1000
      const ours = (cpu.user + cpu.system + report.measuredCpuMicros) / 1e6 + (redisAfter - redisBefore)
      noise = {
        others: Math.max(0, machineAfter.busy - machineBefore.busy - ours) / wall,
        steal: (machineAfter.steal - machineBefore.steal) / wall,
      }
    }
    return { name, report, cpuPerRequest: (cpu.user + cpu.system) / Math.max(report.measured.total, 1), noise }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}

interface MachineCpu {
  /** CPU seconds since boot, all CPUs: busy, and stolen by the hypervisor. */
  busy: number
  steal: number
  at: number
}

/** Linux only; undefined elsewhere. */
async function machineCpu(): Promise<MachineCpu | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!
    // cpu  user nice system idle iowait irq softirq steal ...
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    return { busy: (user! + nice! + system! + irq! + softirq!) / 100, steal: steal! / 100, at: Date.now() }
  } catch {
    return undefined
  }
}

function printTable(rows: Measurement[]): void {
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'requests', 'non-2xx', 'errors', 'server CPU µs/req', 'other processes', 'steal']
  const percent = (cpus?: number) => (cpus === undefined ? 'n/a' : `${(cpus * 100).toFixed(0)} % CPU`)
  const lines = rows.map(({ name, report: { measured: m }, cpuPerRequest, noise }) => [
    name,
    m.requestsPerSecond.toFixed(0),
    m.latencyP50.toFixed(1),
    m.latencyP99.toFixed(1),
    String(m.total),
    String(m.non2xx),
    String(m.errors + m.timeouts),
    cpuPerRequest.toFixed(0),
    percent(noise?.others),
    percent(noise?.steal),
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)))
  const format = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  console.log()
  console.log(format(header))
  console.log(widths.map((width) => '-'.repeat(width)).join('  '))
  for (const line of lines) console.log(format(line))
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
