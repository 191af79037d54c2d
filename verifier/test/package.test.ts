// The package installs and works where nothing of the gateway's repository exists: packed
// with `npm pack` (which builds it), installed from the tarball into a fresh project in the
// temp dir, imported by its name, and run: a token passes, a forged one does not.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'

const packageDir = resolve(import.meta.dirname, '..')
const project = mkdtempSync(join(tmpdir(), 'verifier-consumer-'))
t.teardown(() => rmSync(project, { recursive: true, force: true }))
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 })

t.test('packed, installed from the tarball into an empty project, imported by name', async (t) => {
  npm(['pack', '--pack-destination', project], packageDir)
  const tarball = readdirSync(project).find((file) => file.endsWith('.tgz'))
  t.ok(tarball, 'npm pack wrote a tarball')
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'orders-service', private: true, type: 'module' }))
  npm(['install', `./${tarball}`, 'fastify@5', '--prefer-offline', '--no-audit', '--no-fund'], project)
  const installed = readdirSync(join(project, 'node_modules', '@social-login-gateway', 'verifier')).sort()
  t.same(installed, ['README.md', 'dist', 'package.json'], 'only the build and the README are shipped')

  writeFileSync(
    join(project, 'check.mjs'),
    `
import { createServer } from 'node:http'
import Fastify from 'fastify'
import * as jose from 'jose'
import { accessTokenVerifier } from '@social-login-gateway/verifier'
import { sessionKeys } from '@social-login-gateway/verifier/session-keys'

const { privateKey, publicKey } = await jose.generateKeyPair('ES256')
const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }
const jwks = createServer((request, response) => response.end(JSON.stringify({ keys: [jwk] })))
await new Promise((done) => jwks.listen(0, '127.0.0.1', done))
const issuer = 'http://127.0.0.1:' + jwks.address().port
const sign = (key) => new jose.SignJWT({ sid: 's1', scope: 'read:order' }).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
  .setIssuer(issuer).setAudience('https://orders.example').setSubject('u1').setIssuedAt().setExpirationTime('10m').sign(key)

const app = Fastify()
await app.register(accessTokenVerifier, { issuer, audience: 'https://orders.example' })
app.get('/orders', { preHandler: app.requireScope('read:order') }, async (request) => ({ sub: request.accessToken.sub }))
const ok = await app.inject({ url: '/orders', headers: { authorization: 'Bearer ' + (await sign(privateKey)) } })
const forged = await app.inject({ url: '/orders', headers: { authorization: 'Bearer ' + (await sign((await jose.generateKeyPair('ES256')).privateKey)) } })
console.log(JSON.stringify({ ok: ok.statusCode, body: ok.json(), forged: forged.statusCode, key: sessionKeys.session('u1', 's1') }))
await app.close()
jwks.close()
`,
  )
  const result = JSON.parse(execFileSync(process.execPath, ['check.mjs'], { cwd: project, encoding: 'utf8', timeout: 60_000 }))
  t.same(result, { ok: 200, body: { sub: 'u1' }, forged: 401, key: 'gw:{u1}:s:s1' })
})
