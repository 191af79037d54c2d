// What the verifier's tests stand on, with nothing of the gateway: an issuer that signs
// tokens shaped like the gateway's and publishes its keys over HTTP on loopback, a real
// redis-server, and a fastify service protected by the plugin.

import { spawn } from 'node:child_process'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import * as jose from 'jose'
import { accessTokenVerifier, type VerifierOptions } from '../index.js'

export const AUDIENCE = 'https://orders.example'

export interface Issuer {
  /** The issuer URL (`iss`), also where the key set is served. */
  url: string
  /** Signs a user's access token (RFC 9068 shape, as the gateway signs them); `claims` and `header` override. */
  sign(claims?: jose.JWTPayload, header?: Partial<jose.JWTHeaderParameters>, key?: SigningKey): Promise<string>
  /** Makes a new signing key and publishes it with the old ones; returns it. */
  rotate(alg?: string): Promise<SigningKey>
  /** JWKS requests served so far. */
  fetches(): number
  /** While down, the key set answers 500. */
  setDown(down: boolean): void
  close(): Promise<void>
}

export interface SigningKey {
  kid: string
  alg: string
  privateKey: jose.CryptoKey
  publicJwk: jose.JWK
}

export async function newKey(alg = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true })
  const publicJwk = { ...(await jose.exportJWK(publicKey)), alg, use: 'sig', kid: randomUUID() }
  return { kid: publicJwk.kid, alg, privateKey, publicJwk }
}

export async function startIssuer(): Promise<Issuer> {
  const keys = [await newKey()]
  let fetches = 0
  let down = false
  const server: Server = createServer((request: IncomingMessage, response) => {
    if (request.url !== '/.well-known/jwks.json') return void response.writeHead(404).end()
    fetches++
    if (down) return void response.writeHead(500).end()
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.map((key) => key.publicJwk) }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    async sign(claims = {}, header = {}, key = keys[0]!) {
      const now = Math.floor(Date.now() / 1000)
      return new jose.SignJWT({ client_id: 'app', sid: randomUUID(), jti: randomUUID(), scope: 'read:order', ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
        .setIssuer(typeof claims.iss === 'string' ? claims.iss : url)
        .setAudience(claims.aud ?? AUDIENCE)
        .setSubject(typeof claims.sub === 'string' ? claims.sub : randomUUID())
        .setIssuedAt(now)
        .setExpirationTime(typeof claims.exp === 'number' ? claims.exp : now + 600)
        .sign(key.privateKey)
    },
    async rotate(alg = 'ES256') {
      const key = await newKey(alg)
      keys.unshift(key)
      return key
    },
    fetches: () => fetches,
    setDown: (value) => void (down = value),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** A service with two routes: GET /me (any valid token) and GET /orders (read:order). */
export async function startService(options: Omit<VerifierOptions, 'audience'> & { audience?: VerifierOptions['audience'] }): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(accessTokenVerifier, { audience: AUDIENCE, ...options })
  app.get('/me', { preHandler: app.authenticate }, async (request) => ({ sub: request.accessToken!.sub, sid: request.accessToken!.sid, clientId: request.accessToken!.clientId }))
  app.get('/orders', { preHandler: app.requireScope('read:order') }, async () => ({ orders: [] }))
  app.get('/refunds', { preHandler: app.requireScope('write:refund') }, async () => ({ refunds: [] }))
  await app.ready()
  return app
}

export const call = (app: FastifyInstance, url: string, token?: string, authorization = token && `Bearer ${token}`) =>
  app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} })

export interface TestRedis {
  url: string
  port: number
  pause(): void
  resume(): void
  stop(): Promise<void>
}

/** A throw-away redis-server on a free loopback port (SIGSTOP/SIGCONT to make it stall). */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'verifier-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  process.once('exit', () => child.kill('SIGKILL'))
  for (let attempt = 0; ; attempt++) {
    if (await canConnect(port)) break
    if (attempt > 200 || child.exitCode !== null) throw new Error('redis-server did not start (is it installed?)')
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async stop() {
      child.kill('SIGCONT')
      child.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function freePort(): Promise<number> {
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
