// The package installs and works where nothing of the gateway's repository exists: packed
// with `npm pack` (which builds it), installed into fresh projects in the temp dir, from the
// tarball and by path (`--install-links`, after the build), imported by its name, and run: a
// token passes, a forged one does not, and revocation works with the project's own ioredis.
// The project's TypeScript sees the package's types.

import { execFileSync } from 'node:child_process'
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { startRedis } from './support.js'

const packageDir = resolve(import.meta.dirname, '..')
const work = mkdtempSync(join(tmpdir(), 'verifier-consumer-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const run = (command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, env: { ...process.env, ...env } })
const npm = (args: string[], cwd: string) => run('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], cwd)

function newProject(name: string): string {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }))
  writeFileSync(join(dir, 'check.mjs'), CHECK)
  return dir
}

// A service's smoke test, with no help from the repository: its own keys (node:crypto), its
// own key set on loopback, tokens signed by hand.
const CHECK = `
import { createServer } from 'node:http'
import { generateKeyPairSync, sign } from 'node:crypto'
import Fastify from 'fastify'
import { accessTokenVerifier } from '@social-login-gateway/verifier'
import { sessionKeys } from '@social-login-gateway/verifier/session-keys'

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
const keyPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ours = keyPair()
const jwk = { ...ours.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' }
const jwks = createServer((request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })))
await new Promise((done) => jwks.listen(0, '127.0.0.1', done))
const issuer = 'http://127.0.0.1:' + jwks.address().port
const audience = 'https://orders.example'
function token(privateKey, claims = {}) {
  const now = Math.floor(Date.now() / 1000)
  const input = b64({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }) + '.' +
    b64({ iss: issuer, aud: audience, sub: 'u1', sid: 's1', client_id: 'app', scope: 'read:order', iat: now, exp: now + 600, jti: 'j1', ...claims })
  return input + '.' + sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
}
async function service(options) {
  const app = Fastify()
  await app.register(accessTokenVerifier, { issuer, audience, ...options })
  app.get('/orders', { preHandler: app.requireScope('read:order') }, async (request) => ({ sub: request.accessToken.sub, scopes: request.accessToken.scopes }))
  return app
}
async function get(app, bearer) {
  const answer = await app.inject({ url: '/orders', headers: { authorization: 'Bearer ' + bearer } })
  return answer.statusCode === 200 ? answer.json() : answer.statusCode
}

const result = {}
const plain = await service({})
result.valid = await get(plain, token(ours.privateKey))
result.forged = await get(plain, token(keyPair().privateKey))
result.noScope = await get(plain, token(ours.privateKey, { scope: 'profile' }))
await plain.close()
if (process.env.REDIS_URL) {
  const { Redis } = await import('ioredis')
  const redis = new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 })
  await new Promise((done) => redis.once('ready', done))
  const revoking = await service({ revocation: { redis } })
  await redis.hset(sessionKeys.session('u1', 's1'), 'gen', '0')
  result.live = await get(revoking, token(ours.privateKey))
  await redis.del(sessionKeys.session('u1', 's1'))
  result.ended = await get(revoking, token(ours.privateKey))
  await revoking.close()
  redis.disconnect()
}
jwks.close()
console.log(JSON.stringify(result))
`

// The service's TypeScript: the package's types, and fastify's augmented with its decorators.
const TYPES = `
import Fastify from 'fastify'
import { accessTokenVerifier, type VerifiedAccessToken, type VerifierOptions } from '@social-login-gateway/verifier'
import { sessionKeys } from '@social-login-gateway/verifier/session-keys'

const app = Fastify()
const options: VerifierOptions = { issuer: 'https://login.example', audience: 'https://orders.example', revocation: false }
await app.register(accessTokenVerifier, options)
app.get('/orders', { preHandler: app.requireScope('read:order') }, async (request) => {
  const token: VerifiedAccessToken = request.accessToken!
  // @ts-expect-error: sub is a string, so the types are the package's, not any
  const wrong: number = token.sub
  return { wrong, key: sessionKeys.session(token.sub, token.sid ?? '') }
})
app.get('/me', { preHandler: app.authenticate }, async (request) => request.accessToken?.scopes)
`

const OK = { valid: { sub: 'u1', scopes: ['read:order'] }, forged: 401, noScope: 403 }

npm(['pack', '--pack-destination', work], packageDir)
const tarball = readdirSync(work).find((file) => file.endsWith('.tgz'))

t.test('from the tarball: only the build and the README, imported by name, with revocation through its own ioredis', async (t) => {
  t.equal(tarball, 'social-login-gateway-verifier-0.1.0.tgz', 'npm pack wrote the tarball')
  const project = newProject('orders-service')
  npm(['install', join(work, tarball!), 'fastify@5', 'ioredis'], project)
  const installed = join(project, 'node_modules', '@social-login-gateway', 'verifier')
  t.same(readdirSync(installed).sort(), ['README.md', 'dist', 'package.json'], 'only the build and the README are shipped')
  const modules = ['index', 'revocation', 'session-keys', 'verify']
  t.same(readdirSync(join(installed, 'dist')).sort(), modules.flatMap((name) => [`${name}.d.ts`, `${name}.js`, `${name}.js.map`]), 'the build holds the sources, not the tests')

  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const result = JSON.parse(run(process.execPath, ['check.mjs'], project, { REDIS_URL: redis.url }))
  t.same(result, { ...OK, live: OK.valid, ended: 401 }, 'a valid token passes; forged 401; no scope 403; a live session passes, an ended one 401')

  writeFileSync(join(project, 'service.ts'), TYPES)
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['service.ts'] }),
  )
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  t.doesNotThrow(() => run(process.execPath, [tsc, '-p', project], project), "the service's TypeScript compiles against the package's types")
})

t.test('by path, after the build: npm install --install-links copies it, dependencies and all', async (t) => {
  const project = newProject('cart-service')
  npm(['install', '--install-links', packageDir, 'fastify@5'], project)
  t.notOk(lstatSync(join(project, 'node_modules', '@social-login-gateway', 'verifier')).isSymbolicLink(), 'a copy, not a link into the repository')
  t.same(JSON.parse(run(process.execPath, ['check.mjs'], project)), OK, 'a valid token passes; forged 401; no scope 403')
})
