// What the verifier's tests stand on, with nothing of the gateway: an issuer that signs
// tokens shaped like the gateway's and publishes its keys over HTTP on loopback, a real
// redis-server, and a fastify service protected by the plugin.

import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import * as jose from 'jose'
import { accessTokenVerifier, type VerifierOptions } from '../index.js'

export const AUDIENCE = 'https://orders.example'
/** The algorithms the gateway can sign with. */
export const GATEWAY_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const

export interface SigningKey {
  kid: string
  alg: string
  privateKey: jose.CryptoKey
  publicJwk: jose.JWK
}

export interface Issuer {
  /** The issuer URL (`iss`), also where the key set is served. */
  url: string
  /** The published keys, newest first: at start one of each of GATEWAY_ALGORITHMS, ES256 first. */
  keys: SigningKey[]
  /**
   * Signs a user's access token shaped as the gateway signs them (RFC 9068: `typ: at+jwt`,
   * `kid`, iss, aud, sub, sid, client_id, scope, auth_time, iat, exp, jti). `claims` and
   * `header` override; a member set to undefined is left out.
   */
  sign(claims?: Record<string, unknown>, header?: Record<string, unknown>, key?: SigningKey): Promise<string>
  /** Makes a new signing key and publishes it with the old ones; returns it. */
  rotate(alg?: string): Promise<SigningKey>
  /** JWKS requests served so far. */
  fetches(): number
  /** While down, the key set answers 500. */
  setDown(down: boolean): void
  close(): Promise<void>
}

export async function newKey(alg = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true })
  const publicJwk = { ...(await jose.exportJWK(publicKey)), alg, use: 'sig', kid: randomUUID() }
  return { kid: publicJwk.kid, alg, privateKey, publicJwk }
}

const defined = (record: Record<string, unknown>) => Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined))

export async function startIssuer(): Promise<Issuer> {
  const keys = await Promise.all(GATEWAY_ALGORITHMS.map((alg) => newKey(alg)))
  let fetches = 0
  let down = false
  const server: Server = createServer((request, response) => {
    if (request.url !== '/.well-known/jwks.json') return void response.writeHead(404).end()
    fetches++
    if (down) return void response.writeHead(500).end()
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.map((key) => key.publicJwk) }))
  })
  await listen(server)
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    keys,
    async sign(claims = {}, header = {}, key = keys[0]!) {
      const now = Math.floor(Date.now() / 1000)
      const payload = defined({
        iss: url,
        aud: AUDIENCE,
        sub: randomUUID(),
        sid: randomUUID(),
        client_id: 'app',
        scope: 'read:order',
        auth_time: now,
        iat: now,
        exp: now + 600,
        jti: randomUUID(),
        ...claims,
      })
      return new jose.SignJWT(payload)
        .setProtectedHeader(defined({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header }) as jose.JWTHeaderParameters)
        .sign(key.privateKey)
    },
    async rotate(alg = 'ES256') {
      const key = await newKey(alg)
      keys.unshift(key)
      return key
    },
    fetches: () => fetches,
    setDown: (value) => void (down = value),
    close: () => close(server),
  }
}

/**
 * A service with four routes: GET /me (any valid token; answers `request.accessToken`),
 * GET /orders (read:order), GET /refunds (write:refund), GET /exports (read:order and export:order).
 */
export async function startService(options: Omit<VerifierOptions, 'audience'> & { audience?: VerifierOptions['audience'] }): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(accessTokenVerifier, { audience: AUDIENCE, ...options })
  app.get('/me', { preHandler: app.authenticate }, async (request) => request.accessToken)
  app.get('/orders', { preHandler: app.requireScope('read:order') }, async () => ({ orders: [] }))
  app.get('/refunds', { preHandler: app.requireScope('write:refund') }, async () => ({ refunds: [] }))
  app.get('/exports', { preHandler: app.requireScope('read:order', 'export:order') }, async () => ({ exports: [] }))
  await app.ready()
  return app
}

export const call = (app: FastifyInstance, url: string, token?: string, authorization = token && `Bearer ${token}`) =>
  app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} })

/** An HTTP server on a free loopback port; `close` also drops open connections. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

export function close(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

export interface TestRedis {
  url: string
  port: number
  /** SIGSTOP: the server holds its connections and answers nothing. */
  pause(): void
  resume(): void
  /** Ends the server (connections refused from then on). */
  stop(): Promise<void>
  /** Starts it again on the same port, empty (after stop()). */
  start(): Promise<void>
}

/** A throw-away redis-server on a free loopback port, nothing persisted. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'verifier-redis-'))
  let running: { child: ChildProcess; exited: Promise<void>; killOnExit: () => void } | undefined
  const start = async () => {
    mkdirSync(dir, { recursive: true })
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const killOnExit = () => child.kill('SIGKILL')
    process.once('exit', killOnExit)
    running = { child, exited, killOnExit }
    for (let attempt = 0; ; attempt++) {
      if (await canConnect(port)) break
      if (attempt > 200 || child.exitCode !== null) throw new Error('redis-server did not start (is it installed?)')
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pause: () => void running?.child.kill('SIGSTOP'),
    resume: () => void running?.child.kill('SIGCONT'),
    async stop() {
      if (!running) return
      const { child, exited, killOnExit } = running
      running = undefined
      child.kill('SIGCONT')
      child.kill('SIGTERM')
      await exited
      process.removeListener('exit', killOnExit)
      rmSync(dir, { recursive: true, force: true })
    },
    start,
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
  })
}

/** Resolves to 'no answer' if `promise` has not settled within `ms`. */
export function within<T>(ms: number, promise: Promise<T>): Promise<T | 'no answer'> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([promise, new Promise<'no answer'>((resolve) => (timer = setTimeout(() => resolve('no answer'), ms)))]).finally(() => clearTimeout(timer))
}
