// The package installs and works where nothing of the gateway's repository exists: packed
// with `npm pack` (which builds it), installed from the tarball into a fresh project in the
// temp dir, imported by its name and run. Its code touches no browser-only global (window,
// document, web storage…), so it runs in React Native as in the browser.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import ts from 'typescript'

const packageDir = resolve(import.meta.dirname, '..')
const project = mkdtempSync(join(tmpdir(), 'client-consumer-'))
t.teardown(() => rmSync(project, { recursive: true, force: true }))
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })

t.test('packed, installed from the tarball into an empty project, imported by name', async (t) => {
  npm(['pack', '--pack-destination', project], packageDir)
  const tarball = readdirSync(project).find((file) => file.endsWith('.tgz'))
  t.ok(tarball, 'npm pack wrote a tarball')
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'an-app', private: true, type: 'module' }))
  npm(['install', `./${tarball}`, '--offline', '--no-audit', '--no-fund'], project)
  const installed = join(project, 'node_modules', '@social-login-gateway', 'client')
  t.same(readdirSync(installed).sort(), ['README.md', 'dist', 'package.json'], 'only the build and the README are shipped')
  t.same(readdirSync(join(project, 'node_modules')).filter((name) => !name.startsWith('.')), ['@social-login-gateway'], 'no dependencies come along')
  t.same(readdirSync(join(installed, 'dist')).sort(), ['index.d.ts', 'index.js', 'index.js.map'])

  // An app with a stand-in gateway (its own fetch): three concurrent refreshes, one request.
  writeFileSync(
    join(project, 'check.mjs'),
    `
import { createGatewayClient, GatewayError } from '@social-login-gateway/client'
let calls = 0
const stored = { value: 'r0' }
const client = createGatewayClient({
  baseUrl: 'https://login.example/',
  platform: 'native',
  storage: { get: async () => stored.value, set: async (v) => { stored.value = v }, delete: async () => { stored.value = null } },
  fetch: async (url, init) => {
    calls++
    await new Promise((r) => setTimeout(r, 20))
    return new Response(JSON.stringify({ status: 'authenticated', accessToken: 'a' + calls, expiresIn: 600, refreshToken: 'r' + calls }), { status: 200, headers: { 'content-type': 'application/json' } })
  },
})
const tokens = await Promise.all([client.refresh(), client.refresh(), client.getAccessToken()])
console.log(JSON.stringify({ tokens, calls, stored: stored.value, state: client.state, error: new GatewayError(503, 'unavailable', 'x').transient }))
`,
  )
  const result = JSON.parse(execFileSync(process.execPath, ['check.mjs'], { cwd: project, encoding: 'utf8', timeout: 30_000 }))
  t.same(result, { tokens: ['a1', 'a1', 'a1'], calls: 1, stored: 'r1', state: 'signed_in', error: true })
})

t.test('no browser-only global in the code: it runs in React Native', async (t) => {
  const source = readFileSync(join(packageDir, 'src', 'index.ts'), 'utf8')
  // Comments may name them ("never localStorage"); the code may not.
  const code = ts.transpileModule(source, { compilerOptions: { removeComments: true, target: ts.ScriptTarget.ES2022 } }).outputText
  const found = code.match(/\b(window|document|self|globalThis|localStorage|sessionStorage|indexedDB|navigator|location|XMLHttpRequest|crypto|atob|btoa|Buffer|process|require)\b/g)
  t.same(found ?? [], [], 'only fetch, Headers, AbortController, setTimeout and URL (web-only helpers) are used')
})
