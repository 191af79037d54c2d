// `npm run faults`: the fault table, measured. Each scenario injects one fault into real
// servers on loopback (redis-server, a PostgreSQL 15 cluster, the Google emulator, and a
// fresh gateway from createGateway, or from `src/main.ts` in a child process where the
// gateway itself is killed) and prints one row of what the clients saw: how long a 503
// took, how many sessions were lost, how long recovery took, and the checks that matter
// for that fault. Then the Redis bytes one session costs after 1 and 1,000 rotations.
//
// A measuring tool, not a test: figures are printed, never asserted. It exits non-zero
// only when a scenario could not run at all. Every process it starts is stopped when its
// scenario ends, however it ends, and on SIGINT/SIGTERM.
//
//   FAULT_SCENARIOS=1,4c   run only these rows (by the ids printed in the first column)
//   FAULT_STACKS=1         also print the stack of each uncaught error

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import * as jose from 'jose'
import pg from 'pg'
import { startGoogleEmulator, type EmulatedAccount, type GoogleEmulator } from '../emulators/google.js'
import { loadConfig } from '../src/config.js'
import { createGateway, type Gateway } from '../src/gateway.js'
import { freeLoopbackPort, waitForLoopbackPort } from '../src/common/loopback.js'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { GOOGLE_CLIENT, REDIRECT_URI } from '../test/support/gateway.js'
import { createTestDatabase, startPostgresCluster, type PostgresCluster } from '../test/support/postgres.js'
import { startRedis } from '../test/support/redis.js'
import { median, onCleanUp, runBench, tempDir } from './harness.js'

const REPOSITORY = new URL('..', import.meta.url).pathname

/** Scenario 1: sessions refreshing while Redis is frozen, and for how long. */
const FROZEN_SESSIONS = 20
const FREEZE_SECONDS = 20
/** A client's pause between two successful refreshes; after a 503 it waits RETRY_MS. */
const THINK_MS = 50
const RETRY_MS = 1000
/** Scenario 4: first logins in the burst, and sessions refreshing meanwhile. */
const BURST_LOGINS = 50
const BURST_REFRESHERS = 5
/** The burst's logins start evenly over this long; the fault starts 300 ms in. */
const BURST_SPREAD_MS = 1000
const POSTGRES_FREEZE_SECONDS = 10

// ---- rows and figures ----

interface Row {
  id: string
  scenario: string
  /** 503 latency, median / max. */
  unavailable: string
  lost: string
  recovery: string
  checks: string[]
}

type Figures = Omit<Row, 'id' | 'scenario'>

const range = (count: number) => Array.from({ length: count }, (_, index) => index)
const ms = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? 'n/a' : `${Math.round(value)} ms`)
const seconds = (value: number) => `${(value / 1000).toFixed(1)} s`

/** "median / max (count)" of the latencies of 503 answers. */
function unavailableLatency(answers: Answer[]): string {
  const latencies = answers.filter((answer) => answer.status === 503).map((answer) => answer.ms)
  if (latencies.length === 0) return 'no 503'
  return `${ms(median(latencies))} / ${ms(Math.max(...latencies))} (${latencies.length})`
}

/** "2× text, 1× other" */
function textCounts(texts: string[]): string {
  const counts = new Map<string, number>()
  for (const text of texts) counts.set(text, (counts.get(text) ?? 0) + 1)
  return [...counts].map(([text, count]) => `${count}× ${text}`).join(', ')
}

/** "200×12 503×4", status 0 meaning no answer. */
function statusCounts(statuses: number[]): string {
  const counts = new Map<number, number>()
  for (const status of statuses) counts.set(status, (counts.get(status) ?? 0) + 1)
  return [...counts].sort(([a], [b]) => a - b).map(([status, count]) => `${status || 'none'}×${count}`).join(' ') || 'none'
}

// ---- what one scenario started ----

/** One temp dir for the whole run (removed at the end); each server gets its own dir inside. */
let runDir: Promise<string> | undefined
async function scratchDir(prefix: string): Promise<string> {
  runDir ??= tempDir('gateway-faults-')
  return mkdtemp(join(await runDir, prefix))
}

/** Stops what a scenario started, in reverse order, when it ends however it ends (and on SIGINT/SIGTERM). */
class Scope {
  private readonly steps: (() => unknown)[] = []
  private closing: Promise<void> | undefined

  constructor() {
    onCleanUp(() => this.close())
  }

  add<T>(value: T, stop: (value: T) => unknown): T {
    this.steps.push(() => stop(value))
    return value
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const step of this.steps.splice(0).reverse()) {
        try {
          await step()
        } catch (error) {
          console.error('  cleanup step failed:', error instanceof Error ? error.message : error)
        }
      }
    })()
    return this.closing
  }
}

async function withScope(run: (scope: Scope) => Promise<Figures>): Promise<Figures> {
  const scope = new Scope()
  try {
    return await run(scope)
  } finally {
    await scope.close()
  }
}

/** A Redis connection of the script's own, for setting up and reading back. */
function adminRedis(scope: Scope, url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: true })
  redis.on('error', () => {})
  return scope.add(redis, (client) => client.disconnect())
}

// ---- servers ----

/** What every scenario shares: one PostgreSQL cluster (a fresh database each) and the Google emulator. */
interface Environment {
  postgres: PostgresCluster
  google: GoogleEmulator
}

async function signingKeys(): Promise<string> {
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const jwk = await jose.exportJWK(privateKey)
  jwk.kid = await jose.calculateJwkThumbprint(jwk)
  jwk.alg = 'ES256'
  return JSON.stringify({ keys: [jwk] })
}

/** The gateway's environment, as `npm start` would read it; rate limits far above what the scenarios send. */
async function gatewayEnvironment(env: Environment, port: number, redisUrl: string, dataDir: string): Promise<Record<string, string>> {
  const database = await createTestDatabase()
  return {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    REDIS_URL: redisUrl,
    DATABASE_URL: database.url,
    SIGNING_KEYS: await signingKeys(),
    GOOGLE_CLIENT_ID: GOOGLE_CLIENT.clientId,
    GOOGLE_CLIENT_SECRET: GOOGLE_CLIENT.clientSecret,
    GOOGLE_ISSUER: env.google.issuer,
    ALLOWED_REDIRECT_URIS: REDIRECT_URI,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_LOGIN: '1000000',
    RATE_LIMIT_TOKEN: '1000000',
    RATE_LIMIT_REFRESH: '1000000',
  }
}

interface LiveGateway {
  gateway: Gateway
  url: string
  databaseUrl: string
}

/** A fresh gateway from createGateway over a fresh database, listening on a free loopback port. */
async function liveGateway(scope: Scope, env: Environment, redisUrl: string): Promise<LiveGateway> {
  const port = await freeLoopbackPort()
  const settings = await gatewayEnvironment(env, port, redisUrl, await scratchDir('gateway-'))
  const gateway = scope.add(await createGateway(loadConfig(settings), false), (running) => running.close())
  await gateway.app.listen({ host: '127.0.0.1', port })
  return { gateway, url: settings.PUBLIC_URL!, databaseUrl: settings.DATABASE_URL! }
}

/** Signals a child process unless it has already ended, and waits for its exit. */
async function endProcess(proc: ChildProcess | undefined, exited: Promise<void>, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
  proc.kill(signal)
  await exited
}

interface KillableRedis {
  url: string
  /** Starts redis-server (again) on the same port and dir; resolves once it accepts connections. */
  start(): Promise<void>
  kill9(): Promise<void>
  stop(): Promise<void>
}

/** A redis-server of our own (test/support/redis.ts has no persistence settings and no SIGKILL). */
async function killableRedis(dir: string, settings: string[]): Promise<KillableRedis> {
  const port = await freeLoopbackPort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--maxmemory-policy', 'noeviction', '--loglevel', 'warning', ...settings]
  let child: ChildProcess | undefined
  let exited = Promise.resolve()
  const killOnExit = () => child?.kill('SIGKILL')
  process.on('exit', killOnExit)

  async function start(): Promise<void> {
    const proc = spawn('redis-server', args, { stdio: 'ignore' })
    child = proc
    exited = new Promise((resolve) => proc.once('exit', () => resolve()))
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', reject)
      proc.once('exit', (code, signal) => reject(new Error(`redis-server exited during start-up (${signal ?? code})`)))
    })
    failed.catch(() => {})
    await Promise.race([failed, waitForLoopbackPort(port, 'redis-server')])
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    await endProcess(child, exited, signal)
    child = undefined
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    kill9: () => end('SIGKILL'),
    async stop() {
      await end('SIGTERM')
      process.removeListener('exit', killOnExit)
    },
  }
}

interface ChildGateway {
  url: string
  /** Starts `src/main.ts` (again); resolves with the milliseconds until /health/ready answered 200. */
  start(): Promise<number>
  kill9(): Promise<void>
  stop(): Promise<void>
}

/** The gateway as production runs it (`node --import tsx src/main.ts`), in a child process. */
function childGateway(settings: Record<string, string>): ChildGateway {
  const url = settings.PUBLIC_URL!
  let child: ChildProcess | undefined
  let exited = Promise.resolve()
  let output = ''
  const killOnExit = () => child?.kill('SIGKILL')
  process.on('exit', killOnExit)

  async function end(signal: NodeJS.Signals): Promise<void> {
    await endProcess(child, exited, signal)
    child = undefined
  }

  return {
    url,
    async start() {
      const started = Date.now()
      const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: REPOSITORY,
        env: { ...process.env, ...settings },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      child = proc
      exited = new Promise((resolve) => proc.once('exit', () => resolve()))
      const collect = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000))
      proc.stdout!.on('data', collect)
      proc.stderr!.on('data', collect)
      while (Date.now() - started < 60_000) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the gateway exited during start-up:\n${output}`)
        if ((await call(url, 'GET', '/health/ready')).status === 200) return Date.now() - started
        await sleep(50)
      }
      throw new Error(`the gateway was not ready within 60 s:\n${output}`)
    },
    kill9: () => end('SIGKILL'),
    async stop() {
      await end('SIGTERM')
      process.removeListener('exit', killOnExit)
    },
  }
}

// ---- clients ----

interface Body {
  status?: string
  error?: string
  refreshToken?: string
  accessToken?: string
  signupToken?: string
  authorizationUrl?: string
  state?: string
  checks?: Record<string, string>
  keys?: { kid?: string }[]
}

interface Answer {
  /** 0: no answer (connection error or our own 20 s timeout). */
  status: number
  body: Body
  /** Latency of this request. */
  ms: number
  /** When the answer arrived (Date.now()). */
  at: number
}

async function call(base: string, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<Answer> {
  const started = performance.now()
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      body: payload === undefined ? undefined : JSON.stringify(payload),
      signal: AbortSignal.timeout(20_000),
    })
    const text = await response.text()
    let body: Body = {}
    try {
      body = text ? (JSON.parse(text) as Body) : {}
    } catch {
      // not JSON: only the status counts
    }
    return { status: response.status, body, ms: performance.now() - started, at: Date.now() }
  } catch {
    return { status: 0, body: {}, ms: performance.now() - started, at: Date.now() }
  }
}

const refresh = (base: string, refreshToken: string) => call(base, 'POST', '/auth/token', { refreshToken })
const logout = (base: string, refreshToken: string) => call(base, 'POST', '/auth/logout', { refreshToken })
const readiness = (base: string) => call(base, 'GET', '/health/ready')
const jwks = (base: string) => call(base, 'GET', '/.well-known/jwks.json')

/** A Google account; with a name the first login creates the user, without one it asks for a signup. */
const account = (sub: string, named: boolean): EmulatedAccount => ({ sub, email: `${sub}@example.test`, ...(named ? { name: 'Faulty' } : {}) })

/** The steps of a login up to the code: login/start, then the user at Google. Undefined code: login/start failed. */
async function authorize(env: Environment, base: string, user: EmulatedAccount, seen: (answer: Answer) => void = () => {}) {
  const start = await call(base, 'POST', '/auth/login/start', { provider: 'google', redirectUri: REDIRECT_URI })
  seen(start)
  if (start.status !== 200) return { start, code: undefined, state: undefined }
  const redirect = await env.google.authorize(start.body.authorizationUrl!, user)
  return { start, code: redirect.searchParams.get('code') ?? undefined, state: start.body.state }
}

/** The whole browserless login over HTTP; the last answer (login/start's when it failed). */
async function login(env: Environment, base: string, user: EmulatedAccount, seen: (answer: Answer, step: string) => void = () => {}): Promise<Answer> {
  const { start, code, state } = await authorize(env, base, user, (answer) => seen(answer, 'login/start'))
  if (code === undefined) return start
  const answer = await call(base, 'POST', '/auth/login', { provider: 'google', code, redirectUri: REDIRECT_URI, state })
  seen(answer, 'login')
  return answer
}

/** A signed-in user's refresh token (the login must work). */
async function signIn(env: Environment, base: string, sub: string): Promise<string> {
  const answer = await login(env, base, account(sub, true))
  if (answer.status !== 200 || !answer.body.refreshToken) throw new Error(`login of ${sub} failed: ${answer.status} ${JSON.stringify(answer.body)}`)
  return answer.body.refreshToken
}

/** A refresh that must work (setting up a scenario). */
async function mustRefresh(base: string, refreshToken: string): Promise<string> {
  const answer = await refresh(base, refreshToken)
  if (answer.status !== 200 || !answer.body.refreshToken) throw new Error(`refresh failed: ${answer.status} ${JSON.stringify(answer.body)}`)
  return answer.body.refreshToken
}

/** Polls /health/ready until 200; milliseconds from `since`, or undefined after `limitMs`. */
async function untilReady(base: string, since: number, limitMs: number): Promise<number | undefined> {
  while (Date.now() - since < limitMs) {
    if ((await readiness(base)).status === 200) return Date.now() - since
    await sleep(25)
  }
  return undefined
}

/** The Redis key of the session a refresh token belongs to. */
function sessionKeyOf(refreshToken: string): string {
  const parts = parseRefreshToken(refreshToken)
  if (!parts) throw new Error('not a refresh token of ours')
  return `gw:{${parts.userId}}:s:${parts.sessionId}`
}

// ---- 1. Redis frozen under refresh load ----

interface RefreshingClient {
  token: string
  /** The status that ended the session (401), if any. */
  lostWith?: number
  /** Milliseconds from SIGCONT to this client's first 200. */
  backAfter?: number
}

async function redisFrozen(env: Environment): Promise<Figures> {
  return withScope(async (scope) => {
    const redis = scope.add(await startRedis(), (server) => server.stop())
    const { url } = await liveGateway(scope, env, redis.url)
    const clients: RefreshingClient[] = await Promise.all(range(FROZEN_SESSIONS).map(async (i) => ({ token: await signIn(env, url, `frozen-${i}`) })))

    const answers: Answer[] = []
    let resumedAt = Infinity
    let stopping = false
    // Each client refreshes in a loop; after a 503 it waits a second and retries with the token it holds.
    const loops = clients.map(async (client, i) => {
      await sleep(i * 10)
      while (!stopping && client.lostWith === undefined) {
        const answer = await refresh(url, client.token)
        answers.push(answer)
        if (answer.status === 200) {
          client.token = answer.body.refreshToken!
          if (answer.at >= resumedAt) client.backAfter ??= answer.at - resumedAt
          await sleep(THINK_MS)
        } else if (answer.status === 401) {
          client.lostWith = answer.status
        } else {
          await sleep(RETRY_MS)
        }
      }
    })

    await sleep(2000)
    const before = answers.length
    const delay = monitorEventLoopDelay({ resolution: 10 })
    const pausedAt = Date.now()
    redis.pause()
    delay.enable()
    // Public keys and readiness while frozen.
    const keys: Answer[] = []
    const ready: Answer[] = []
    const probes = (async () => {
      while (Date.now() - pausedAt < FREEZE_SECONDS * 1000 - 2500) {
        const [key, check] = await Promise.all([jwks(url), readiness(url)])
        keys.push(key)
        ready.push(check)
        await sleep(500)
      }
    })()
    await sleep(FREEZE_SECONDS * 1000)
    resumedAt = Date.now()
    redis.resume()
    delay.disable()
    await probes

    // Until every client had its 200 (at most 15 s), and a second more of load.
    while (Date.now() - resumedAt < 15_000 && clients.some((client) => client.lostWith === undefined && client.backAfter === undefined)) await sleep(50)
    await sleep(1000)
    stopping = true
    await Promise.all(loops)
    // Afterwards each session goes on: two more refreshes.
    for (const client of clients.filter((candidate) => candidate.lostWith === undefined)) {
      for (let i = 0; i < 2 && client.lostWith === undefined; i++) {
        const answer = await refresh(url, client.token)
        if (answer.status === 200) client.token = answer.body.refreshToken!
        else client.lostWith = answer.status
      }
    }

    const duringAndAfter = answers.slice(before)
    const firstOk = duringAndAfter.filter((answer) => answer.status === 200 && answer.at >= resumedAt).map((answer) => answer.at - resumedAt)
    const back = clients.map((client) => client.backAfter).filter((value): value is number => value !== undefined)
    const lost = clients.filter((client) => client.lostWith !== undefined)
    const keysOk = keys.filter((answer) => answer.status === 200).length
    const other = duringAndAfter.filter((answer) => ![200, 401, 503].includes(answer.status)).map((answer) => answer.status)
    return {
      unavailable: unavailableLatency(duringAndAfter),
      lost: `${lost.length}/${clients.length}${lost.length ? ` (${statusCounts(lost.map((client) => client.lostWith!))})` : ''}`,
      recovery: `SIGCONT to first 200 ${ms(Math.min(...firstOk))}, to all ${back.length}/${clients.length} ${ms(Math.max(...back))} (retry cadence 1 s)`,
      checks: [
        `JWKS 200 during freeze: ${keysOk}/${keys.length} (max ${ms(Math.max(...keys.map((answer) => answer.ms)))})`,
        `/health/ready during freeze: ${statusCounts(ready.map((answer) => answer.status))} (max ${ms(Math.max(...ready.map((answer) => answer.ms)))})`,
        `refresh answers from SIGSTOP on: ${statusCounts(duringAndAfter.map((answer) => answer.status))}`,
        ...(other.length ? [`unexpected statuses: ${statusCounts(other)}`] : []),
        `event-loop delay max ${ms(delay.max / 1e6)}`,
      ],
    }
  })
}

// ---- 2. Redis SIGKILL and restart ----

const SESSIONS_AT_KILL = 10

async function redisKilled(env: Environment, persistence: boolean): Promise<Figures> {
  return withScope(async (scope) => {
    const settings = persistence ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no']
    const redis = scope.add(await killableRedis(await scratchDir('redis-'), settings), (server) => server.stop())
    const { url } = await liveGateway(scope, env, redis.url)
    const tokens = await Promise.all(range(SESSIONS_AT_KILL).map((i) => signIn(env, url, `killed-${persistence ? 'aof' : 'none'}-${i}`)))
    for (const i of range(tokens.length)) tokens[i] = await mustRefresh(url, tokens[i]!)
    await sleep(1500) // more than one `everysec` fsync since

    // Acknowledged just before the kill: a logout of session 0 and a rotation of session 1.
    const loggedOut = await logout(url, tokens[0]!)
    const rotated = await refresh(url, tokens[1]!)
    if (rotated.status === 200) tokens[1] = rotated.body.refreshToken!
    await redis.kill9()
    const killedAt = Date.now()
    const sinceAck = killedAt - loggedOut.at
    // Down for a second: what a client gets meanwhile.
    const whileDown = [await refresh(url, tokens[2]!), await readiness(url)]
    await sleep(1000 - (Date.now() - killedAt))

    const restartedAt = Date.now()
    await redis.start()
    const listening = Date.now() - restartedAt
    const ready = await untilReady(url, restartedAt, 30_000)

    // Every session tries again; a 503 is retried for a few seconds, a 401 is a lost session.
    const statuses = await Promise.all(
      tokens.slice(1).map(async (token) => {
        for (let attempt = 0; ; attempt++) {
          const answer = await refresh(url, token)
          if (answer.status !== 503 || attempt === 5) return answer.status
          await sleep(RETRY_MS)
        }
      }),
    )
    const lost = statuses.filter((status) => status === 401).length
    const afterLogout = await refresh(url, tokens[0]!)
    const loggedOutIs = afterLogout.status === 401 ? 'still refused (401)' : `ACCEPTED AGAIN (${afterLogout.status})`
    return {
      unavailable: unavailableLatency(whileDown),
      lost: `${lost}/${statuses.length}${persistence ? '' : ' (fail closed)'}`,
      recovery: `ready ${ms(ready)} after restart (port open ${ms(listening)}; down 1 s)`,
      checks: [
        `while down: refresh ${whileDown[0]!.status}, /health/ready ${whileDown[1]!.status}`,
        `logout acked (${loggedOut.status}) ${sinceAck} ms before SIGKILL: token ${loggedOutIs}`,
        `rotation acked (${rotated.status}) just before SIGKILL: successor ${statuses[0] === 200 ? 'works (200)' : `refused (${statuses[0]})`}`,
        `refresh after restart: ${statusCounts(statuses)}`,
      ],
    }
  })
}

// ---- 3. Redis full ----

async function redisFull(env: Environment): Promise<Figures> {
  return withScope(async (scope) => {
    const redis = scope.add(await startRedis(), (server) => server.stop())
    const { url } = await liveGateway(scope, env, redis.url)
    const admin = adminRedis(scope, redis.url)
    const refreshing = await signIn(env, url, 'full-refresh')
    const leaving = await signIn(env, url, 'full-logout')
    const key = sessionKeyOf(refreshing)
    const stored = () => admin.hmget(key, 'gen', 'live')

    // maxmemory just above what is used, then dummy keys (16 KB, 1 KB, then 64 B: a big
    // value's own query buffer is refused before the memory is really used up) until Redis
    // refuses even a small write.
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
    await admin.config('SET', 'maxmemory', String(used + 256 * 1024))
    const fill: string[] = []
    for (const size of [16 * 1024, 1024, 64]) {
      for (let i = 0; i < 10_000; i++) {
        const key = `fault:fill:${size}:${i}`
        const refused = await admin.set(key, 'x'.repeat(size)).then(() => false, (error: unknown) => /OOM/.test(String(error)) || Promise.reject(error))
        if (refused) break
        fill.push(key)
      }
    }
    const full = await admin.set('fault:probe', '1').then(() => 'no', (error: unknown) => (/OOM/.test(String(error)) ? 'yes (OOM)' : String(error)))

    const before = await stored()
    const refused = await refresh(url, refreshing)
    const after = await stored()
    const ended = await logout(url, leaving)
    const start = await call(url, 'POST', '/auth/login/start', { provider: 'google', redirectUri: REDIRECT_URI })
    const ready = await readiness(url)

    // Memory back: the token presented during the outage still works, the logout held.
    await admin.del(...fill)
    await admin.config('SET', 'maxmemory', '0')
    const retried = await refresh(url, refreshing)
    const successor = retried.status === 200 ? await refresh(url, retried.body.refreshToken!) : undefined
    const loggedOut = await refresh(url, leaving)
    const halfRotation = before[0] !== after[0] || before[1] !== after[1]
    return {
      unavailable: unavailableLatency([refused, ended, start, ready]),
      lost: retried.status === 200 ? '0/1' : `1/1 (${retried.status})`,
      recovery: `same token after freeing: ${retried.status}, its successor: ${successor?.status ?? '-'}`,
      checks: [
        `full: ${full}, maxmemory = used ${(used / 1024 / 1024).toFixed(2)} MB + 256 KB, ${fill.length} dummy keys`,
        `refresh ${refused.status} (${refused.body.error ?? ''}), logout ${ended.status}, login/start ${start.status}, /health/ready ${ready.status}`,
        `half rotation: ${halfRotation ? `YES (gen ${before[0]} -> ${after[0]})` : `no (gen ${before[0]} unchanged)`}`,
        `logged-out token after freeing: ${loggedOut.status}`,
      ],
    }
  })
}

// ---- 4. PostgreSQL disrupted during a burst of first logins ----

type PostgresFault = 'terminate' | 'restart' | 'freeze-postmaster' | 'freeze-server'

async function adminQuery<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return (await client.query<T>(sql)).rows
  } finally {
    await client.end().catch(() => {})
  }
}

/** The postmaster's pid, and with `all` its children (the whole server). */
async function postgresPids(cluster: PostgresCluster, all: boolean): Promise<number[]> {
  const [{ data_directory: dataDir }] = (await adminQuery<{ data_directory: string }>(cluster.url, 'SHOW data_directory')) as [{ data_directory: string }]
  const postmaster = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  if (!all) return [postmaster]
  const children = execFileSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  return [postmaster, ...children]
}

/** A signal to a server process that may have exited meanwhile (a backend that ended). */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
  }
}

/** Injects the fault; resolves with what was done once it is over. */
async function disruptPostgres(scope: Scope, cluster: PostgresCluster, fault: PostgresFault, pids: number[]): Promise<string> {
  switch (fault) {
    case 'terminate': {
      let terminated = 0
      const started = Date.now()
      while (Date.now() - started < 3000) {
        const [row] = await adminQuery<{ n: string }>(
          cluster.url,
          "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = 'gateway'",
        )
        terminated += Number(row?.n ?? 0)
        await sleep(200)
      }
      return `${terminated} gateway backends terminated over 3 s`
    }
    case 'restart': {
      const started = Date.now()
      await cluster.stop()
      await sleep(2000)
      await cluster.start()
      return `stopped (fast shutdown) and started, down ${seconds(Date.now() - started)}`
    }
    case 'freeze-postmaster':
    case 'freeze-server': {
      const thaw = () => pids.forEach((pid) => signal(pid, 'SIGCONT'))
      scope.add(undefined, thaw) // also when the scenario fails half-way
      pids.forEach((pid) => signal(pid, 'SIGSTOP'))
      await sleep(POSTGRES_FREEZE_SECONDS * 1000)
      thaw()
      return `SIGSTOP ${POSTGRES_FREEZE_SECONDS} s of ${pids.length === 1 ? 'the postmaster' : `the postmaster and its ${pids.length - 1} children`}`
    }
  }
}

interface BurstAnswer extends Answer {
  step: string
}

/** One new user: login; a signup if asked; after a 503 wait a second and retry (a new login once the code is spent). */
async function firstLogin(env: Environment, base: string, sub: string, named: boolean, deadline: number, seen: BurstAnswer[]): Promise<boolean> {
  const record = (answer: Answer, step: string) => seen.push({ ...answer, step })
  let signupToken: string | undefined
  while (Date.now() < deadline) {
    if (signupToken === undefined) {
      let answer: Answer
      try {
        answer = await login(env, base, account(sub, named), record)
      } catch (error) {
        record({ status: 0, body: {}, ms: 0, at: Date.now() }, `emulator: ${error instanceof Error ? error.message : error}`)
        answer = { status: 0, body: {}, ms: 0, at: Date.now() }
      }
      if (answer.status === 200 && answer.body.status === 'authenticated') return true
      if (answer.status === 200 && answer.body.signupToken) {
        signupToken = answer.body.signupToken
        continue
      }
    } else {
      const answer = await call(base, 'POST', '/auth/signup', { signupToken, nickname: 'Faulty' })
      record(answer, 'signup')
      if (answer.status === 201) return true
      // The ticket is gone (401) or its identity already has a user (409): start over with a login.
      if (answer.status === 401 || answer.status === 409) signupToken = undefined
    }
    await sleep(RETRY_MS)
  }
  return false
}

async function postgresDisrupted(env: Environment, fault: PostgresFault): Promise<Figures> {
  return withScope(async (scope) => {
    const redis = scope.add(await startRedis(), (server) => server.stop())
    const { url, databaseUrl } = await liveGateway(scope, env, redis.url)
    const refreshers = await Promise.all(range(BURST_REFRESHERS).map((i) => signIn(env, url, `pg-${fault}-refresh-${i}`)))
    const pids = fault.startsWith('freeze') ? await postgresPids(env.postgres, fault === 'freeze-server') : []

    // Sessions refresh meanwhile (every 200 ms; a second after a 503).
    const refreshes: Answer[] = []
    let stopping = false
    const refreshing = refreshers.map(async (token) => {
      while (!stopping) {
        const answer = await refresh(url, token)
        refreshes.push(answer)
        if (answer.status === 200) token = answer.body.refreshToken!
        if (answer.status === 401) return
        await sleep(answer.status === 200 ? 200 : RETRY_MS)
      }
    })

    const seen: BurstAnswer[] = []
    const started = Date.now()
    const deadline = started + 90_000
    // Half the new users get a name from Google (created at login), half sign up.
    let finished = 0
    const burst = Promise.all(
      range(BURST_LOGINS).map(async (i) => {
        await sleep((i * BURST_SPREAD_MS) / BURST_LOGINS)
        return firstLogin(env, url, `pg-${fault}-${i}`, i % 2 === 0, deadline, seen)
      }),
    ).finally(() => (finished = Date.now()))
    await sleep(300)
    const done = await disruptPostgres(scope, env.postgres, fault, pids)
    const faultOver = Date.now()
    const outcomes = await burst
    await sleep(500)
    stopping = true
    await Promise.all(refreshing)

    const [counts] = await adminQuery<{ users: string; identities: string; orphans: string; duplicates: string }>(
      databaseUrl,
      `SELECT (SELECT count(*) FROM users) AS users,
              (SELECT count(*) FROM identities) AS identities,
              (SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)) AS orphans,
              (SELECT count(*) FROM (SELECT email FROM users GROUP BY email HAVING count(*) > 1) d) AS duplicates`,
    )
    const unexpected = seen.filter((answer) => ![200, 201, 503].includes(answer.status))
    const byStep = [...new Set(unexpected.map((answer) => answer.step))].map(
      (step) => `${step} ${statusCounts(unexpected.filter((answer) => answer.step === step).map((answer) => answer.status))}`,
    )
    const slowest = seen.filter((answer) => answer.status === 503).sort((a, b) => b.ms - a.ms)[0]
    const expectedUsers = BURST_LOGINS + BURST_REFRESHERS
    return {
      unavailable: unavailableLatency(seen),
      lost: `${refreshes.filter((answer) => answer.status === 401).length}/${BURST_REFRESHERS} refreshing`,
      recovery: `${outcomes.filter(Boolean).length}/${BURST_LOGINS} signed in, ${finished > faultOver ? `the last ${seconds(finished - faultOver)} after the fault ended` : `all ${seconds(faultOver - finished)} before the fault ended`}`,
      checks: [
        done,
        `users ${counts?.users}/${expectedUsers}, without identity ${counts?.orphans}, duplicate users per subject ${counts?.duplicates}`,
        `refresh meanwhile: ${statusCounts(refreshes.map((answer) => answer.status))}`,
        `slowest 503: ${slowest ? `${slowest.step} ${ms(slowest.ms)}` : '-'}`,
        `other answers: ${byStep.join(', ') || 'none'}`,
        `burst ${seconds(finished - started)}`,
      ],
    }
  })
}

// ---- 5. The gateway killed between the rotation commit and the response ----

interface RedisRelay {
  url: string
  /**
   * From the first command toward Redis that contains `marker` on, Redis's replies are held
   * back from the gateway; resolves once that command has been passed on to Redis.
   */
  holdRepliesAfter(marker: string): Promise<void>
  /** Back to passing everything; drops the connections that lost replies. */
  release(): void
}

/**
 * A TCP relay in front of Redis. It lets the rotation reach Redis (and commit) while its
 * reply never reaches the gateway: the gateway is then killed between the commit and its
 * answer, as close to the commit as it gets.
 */
async function redisRelay(scope: Scope, redisPort: number): Promise<RedisRelay> {
  let marker: Buffer | undefined
  let holding = false
  let markerPassed = () => {}
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1')
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => {
        sockets.delete(socket)
        client.destroy()
        upstream.destroy()
      })
    }
    let tail = Buffer.alloc(0) // a marker may straddle two chunks
    client.on('data', (chunk: Buffer) => {
      const seen = Buffer.concat([tail, chunk])
      tail = seen.subarray(Math.max(0, seen.length - 256))
      upstream.write(chunk)
      if (marker && !holding && seen.includes(marker)) {
        holding = true
        markerPassed()
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!holding) client.write(chunk)
    })
  })
  scope.add(server, (relay) => {
    for (const socket of sockets) socket.destroy()
    return new Promise((resolve) => relay.close(resolve))
  })
  const port = await freeLoopbackPort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `redis://127.0.0.1:${port}`,
    holdRepliesAfter(text) {
      marker = Buffer.from(text)
      return new Promise((resolve) => (markerPassed = resolve))
    },
    release() {
      marker = undefined
      holding = false
      for (const socket of sockets) socket.destroy()
    },
  }
}

/** Sends one request and lets it hang; `answered()` tells whether an answer came meanwhile. */
function abandonedRequest(base: string, path: string, payload: unknown) {
  const body = JSON.stringify(payload)
  let answered: number | undefined
  const request = httpRequest(`${base}${path}`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } })
  request.on('response', (response) => {
    answered = response.statusCode
    response.resume()
  })
  request.on('error', () => {})
  request.end(body)
  return { answered: () => answered }
}

async function gatewayKilled(env: Environment): Promise<Figures> {
  return withScope(async (scope) => {
    const redis = scope.add(await startRedis(), (server) => server.stop())
    const admin = adminRedis(scope, redis.url)
    const relay = await redisRelay(scope, redis.port)
    const port = await freeLoopbackPort()
    const settings = await gatewayEnvironment(env, port, relay.url, await scratchDir('child-'))
    const gateway = scope.add(childGateway(settings), (child) => child.stop())
    const firstStart = await gateway.start()
    const url = gateway.url

    const token = await signIn(env, url, 'killed-gateway')
    const pendingLogin = await authorize(env, url, account('killed-gateway-login', true))
    const ticket = await login(env, url, account('killed-gateway-signup', false))
    const kidsBefore = (await jwks(url)).body.keys?.map((key) => key.kid).join(',')
    const key = sessionKeyOf(token)

    // The rotation reaches Redis, its reply is held back, and the gateway dies waiting for it.
    const rotationSent = relay.holdRepliesAfter(key)
    const inFlight = abandonedRequest(url, '/auth/token', { refreshToken: token })
    const sent = await Promise.race([rotationSent.then(() => true), sleep(10_000).then(() => false)])
    if (!sent) throw new Error('the rotation never reached Redis')
    await sleep(100) // Redis runs it
    const answeredBeforeKill = inFlight.answered()
    await gateway.kill9()
    relay.release()
    const generation = await admin.hget(key, 'gen')

    const restart = await gateway.start()
    const first = await refresh(url, token)
    const second = await refresh(url, token)
    const sameSuccessor = first.status === 200 && first.body.refreshToken === second.body.refreshToken
    const successorGeneration = first.body.refreshToken ? parseRefreshToken(first.body.refreshToken)?.generation : undefined
    const next = first.status === 200 ? await refresh(url, first.body.refreshToken!) : undefined
    const finished = await call(url, 'POST', '/auth/login', { provider: 'google', code: pendingLogin.code, redirectUri: REDIRECT_URI, state: pendingLogin.state })
    const signedUp = await call(url, 'POST', '/auth/signup', { signupToken: ticket.body.signupToken, nickname: 'Faulty' })
    const kidsAfter = (await jwks(url)).body.keys?.map((key) => key.kid).join(',')
    return {
      unavailable: '-',
      lost: first.status === 200 ? '0/1' : `1/1 (${first.status})`,
      recovery: `restart ready ${ms(restart)} (first start ${ms(firstStart)})`,
      checks: [
        `answer before SIGKILL: ${answeredBeforeKill ?? 'none'}; rotation committed before the kill: ${generation === '1' ? 'yes (gen 0 -> 1)' : `no (gen ${generation})`}`,
        `retry with the old token: ${first.status}, again: ${second.status}, same successor: ${sameSuccessor ? 'yes' : 'NO'} (gen ${successorGeneration ?? '-'}), successor then: ${next?.status ?? '-'}`,
        `login transaction across restart: ${finished.status} ${finished.body.status ?? finished.body.error ?? ''}`,
        `signup ticket across restart: ${signedUp.status}`,
        `signing kid stable: ${kidsBefore === kidsAfter ? 'yes' : 'NO'}`,
      ],
    }
  })
}

// ---- bytes per session ----

/** MEMORY USAGE of every key of one user, by kind of key (s = session hash, index, scopes cache). */
async function userBytes(admin: Redis, userId: string): Promise<{ total: number; parts: string }> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await admin.scan(cursor, 'MATCH', `gw:{${userId}}:*`, 'COUNT', 1000)
    cursor = next
    keys.push(...found)
  } while (cursor !== '0')
  const sizes = await Promise.all(keys.map(async (key) => [key.split(':')[2]!, Number(await admin.memory('USAGE', key, 'SAMPLES', 0))] as const))
  const total = sizes.reduce((sum, [, size]) => sum + size, 0)
  return { total, parts: sizes.map(([kind, size]) => `${kind} ${size}`).sort().join(' + ') }
}

async function bytesPerSession(env: Environment): Promise<Figures> {
  return withScope(async (scope) => {
    const redis = scope.add(await startRedis(), (server) => server.stop())
    const { gateway, url } = await liveGateway(scope, env, redis.url)
    const admin = adminRedis(scope, redis.url)
    let token = await signIn(env, url, 'bytes')
    const userId = parseRefreshToken(token)!.userId
    // Rotations through the app itself: an HTTP socket adds nothing here.
    const rotate = async (times: number) => {
      for (let i = 0; i < times; i++) {
        const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: token } })
        if (answer.statusCode !== 200) throw new Error(`rotation ${i} failed: ${answer.statusCode} ${answer.body}`)
        token = answer.json().refreshToken
      }
    }
    await rotate(1)
    const once = await userBytes(admin, userId)
    await rotate(999)
    const thousand = await userBytes(admin, userId)
    return {
      unavailable: '-',
      lost: '-',
      recovery: '-',
      checks: [`after 1 rotation: ${once.total} B (${once.parts})`, `after 1,000: ${thousand.total} B (${thousand.parts})`],
    }
  })
}

// ---- the table ----

function printTable(rows: Row[]): void {
  const header = ['#', 'scenario', '503 median / max (n)', 'sessions lost', 'recovery', 'checks']
  const lines = rows.map((row) => [row.id, row.scenario, row.unavailable, row.lost, row.recovery, row.checks.join('; ')])
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)))
  // The last column is free text: not padded.
  const format = (cells: string[]) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')
  console.log()
  console.log(format(header))
  console.log(widths.map((width, column) => '-'.repeat(column === widths.length - 1 ? header[column]!.length : width)).join('  '))
  for (const line of lines) console.log(format(line))
}

// An error nobody handles would end the process, the gateway's included: the table records
// it against the scenario that was running (and carries on, to finish the table).
let uncaught: string[] = []

function recordUncaught(error: unknown): void {
  const text = error instanceof Error ? error.message : String(error)
  if (process.env.FAULT_STACKS) console.error(error)
  const frame = error instanceof Error ? /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(error.stack ?? '')?.[1] : undefined
  uncaught.push(`${text}${frame ? ` (raised in ${frame})` : ''}`)
}

async function main(): Promise<number> {
  process.on('uncaughtException', recordUncaught)
  process.on('unhandledRejection', recordUncaught)
  const postgres = await startPostgresCluster()
  onCleanUp(() => postgres.stop())
  // createTestDatabase takes its databases from this cluster.
  process.env.TEST_POSTGRES_URL = postgres.url
  const google = await startGoogleEmulator({ ...GOOGLE_CLIENT, redirectUris: [REDIRECT_URI] })
  onCleanUp(() => google.stop())
  const env: Environment = { postgres, google }

  const scenarios: { id: string; scenario: string; run: () => Promise<Figures> }[] = [
    { id: '1', scenario: `Redis SIGSTOP ${FREEZE_SECONDS} s, ${FROZEN_SESSIONS} sessions refreshing`, run: () => redisFrozen(env) },
    { id: '2a', scenario: 'Redis SIGKILL + restart, no persistence', run: () => redisKilled(env, false) },
    { id: '2b', scenario: 'Redis SIGKILL + restart, AOF everysec', run: () => redisKilled(env, true) },
    { id: '3', scenario: 'Redis full (maxmemory, noeviction)', run: () => redisFull(env) },
    { id: '4a', scenario: `PostgreSQL pg_terminate_backend, ${BURST_LOGINS} first logins`, run: () => postgresDisrupted(env, 'terminate') },
    { id: '4b', scenario: `PostgreSQL restart, ${BURST_LOGINS} first logins`, run: () => postgresDisrupted(env, 'restart') },
    { id: '4c', scenario: `PostgreSQL postmaster SIGSTOP ${POSTGRES_FREEZE_SECONDS} s, ${BURST_LOGINS} first logins`, run: () => postgresDisrupted(env, 'freeze-postmaster') },
    { id: '4d', scenario: `PostgreSQL whole server SIGSTOP ${POSTGRES_FREEZE_SECONDS} s, ${BURST_LOGINS} first logins`, run: () => postgresDisrupted(env, 'freeze-server') },
    { id: '5', scenario: 'gateway SIGKILL between rotation and answer', run: () => gatewayKilled(env) },
    { id: '6', scenario: 'Redis bytes per session (1 user, 1 session)', run: () => bytesPerSession(env) },
  ]
  const only = process.env.FAULT_SCENARIOS?.split(',').map((id) => id.trim()).filter(Boolean)
  const rows: Row[] = []
  let failed = 0
  console.log(`node ${process.version}; Redis, PostgreSQL, the Google emulator and the gateway all on 127.0.0.1`)
  for (const { id, scenario, run } of scenarios) {
    if (only && !only.includes(id)) continue
    const started = Date.now()
    console.log(`${id} ${scenario} ...`)
    uncaught = []
    try {
      const figures = await run()
      if (uncaught.length > 0) figures.checks.push(`UNCAUGHT, the process would have exited: ${textCounts(uncaught)}`)
      rows.push({ id, scenario, ...figures })
    } catch (error) {
      failed += 1
      console.error(`  ${id} could not run:`, error)
      const checks = [`COULD NOT RUN: ${error instanceof Error ? error.message.split('\n')[0] : error}`]
      if (uncaught.length > 0) checks.push(`UNCAUGHT: ${textCounts(uncaught)}`)
      rows.push({ id, scenario, unavailable: '-', lost: '-', recovery: '-', checks })
    }
    console.log(`  (${seconds(Date.now() - started)})`)
  }
  printTable(rows)
  return failed > 0 ? 1 : 0
}

await runBench(main)
