// The layers of the code and the one direction their imports may run:
//
//   src/common          the shared leaves (typed errors, lists, loopback, secrets, profile text): imports nothing of ours
//   providers/          the provider adapters: only each other and src/common
//   src/storage         Redis and the database: only src/common and the generated Prisma client; its settings are handed in
//   domain modules      the rules (sessions, login, signup, identity, clients, tokens, …): never HTTP, fastify or configuration
//   verifier/           a package of its own for resource servers: nothing outside itself
//   client/src          the package apps use: nothing outside itself
//   emulators/          stand-ins for the providers: nothing of the adapters or the gateway, so they cannot share a bug with them
//
// Configuration (src/config.ts) and the composition (src/gateway.ts, src/app.ts) sit on top and
// may import everything; HTTP (src/http, src/routes) may import the domain, never the reverse.

import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const DOMAIN = ['admin', 'audit', 'clients', 'events', 'identity', 'jobs', 'login', 'sessions', 'signup', 'tokens'].map((name) => `src/${name}/`)
const COMPOSITION = ['src/config.ts', 'src/gateway.ts', 'src/app.ts', 'src/main.ts']
const HTTP = ['src/http/', 'src/routes/']

interface Rule {
  /** Files the rule is about (path prefixes from the repository root). */
  files: string[]
  /** Relative imports allowed (prefixes); undefined: any not refused below. */
  onlyFrom?: string[]
  /** Relative imports refused (prefixes). */
  notFrom?: string[]
  /** Packages refused (exact names or `scope/` prefixes). */
  notPackages?: string[]
  why: string
}

const RULES: Rule[] = [
  { files: ['src/common/'], onlyFrom: ['src/common/'], why: 'the shared leaves import nothing of ours' },
  { files: ['providers/'], onlyFrom: ['providers/', 'src/common/'], why: 'adapters depend on nothing but the shared leaves' },
  { files: ['src/storage/'], onlyFrom: ['src/storage/', 'src/common/', 'src/generated/'], why: 'storage gets its settings, it does not read configuration or know the domain' },
  { files: DOMAIN, notFrom: [...HTTP, ...COMPOSITION], notPackages: ['fastify', '@fastify/'], why: 'the domain knows no HTTP and no configuration' },
  { files: ['src/http/'], notFrom: ['src/routes/', ...COMPOSITION.filter((file) => file !== 'src/config.ts')], why: 'the HTTP plumbing is used by routes, not the reverse' },
  { files: ['src/routes/'], notFrom: ['src/gateway.ts', 'src/main.ts'], why: 'routes are handed their services' },
  { files: ['verifier/'], onlyFrom: ['verifier/'], why: 'the verifier package installs without the rest of this repository' },
  { files: ['client/src/'], onlyFrom: ['client/src/'], why: 'the client package installs in an app without the rest of this repository' },
  { files: ['emulators/'], onlyFrom: ['emulators/'], why: 'an emulator that shared code with an adapter would agree with its bugs' },
]

function sourceFiles(directory: string): string[] {
  const found: string[] = []
  for (const entry of readdirSync(path.join(root, directory))) {
    const relative = `${directory}/${entry}`
    if (entry === 'node_modules' || entry === 'dist' || relative === 'src/generated') continue
    if (statSync(path.join(root, relative)).isDirectory()) found.push(...sourceFiles(relative))
    else if (/\.(ts|mts)$/.test(entry) && !entry.endsWith('.d.ts')) found.push(relative)
  }
  return found
}

interface Import {
  from: string
  /** The repository path a relative import resolves to. */
  target?: string
  /** The package name of a bare import. */
  packageName?: string
}

const readSource = (file: string) => readFileSync(path.join(root, file), 'utf8')

function importsOf(file: string, text: string): Import[] {
  const { importedFiles } = ts.preProcessFile(text, true, true)
  return importedFiles.map(({ fileName }) => {
    if (fileName.startsWith('.')) return { from: fileName, target: path.posix.normalize(path.posix.join(path.posix.dirname(file), fileName)).replace(/\.js$/, '.ts') }
    if (fileName.startsWith('node:')) return { from: fileName }
    const parts = fileName.split('/')
    return { from: fileName, packageName: fileName.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0] }
  })
}

const startsWithAny = (value: string, prefixes: string[]) => prefixes.some((prefix) => value === prefix || value.startsWith(prefix))

/** Every import of `files` that breaks `rule`, as "file → import". */
function violations(rule: Rule, files: string[], read = readSource): string[] {
  const found: string[] = []
  for (const file of files.filter((file) => startsWithAny(file, rule.files))) {
    for (const imported of importsOf(file, read(file))) {
      const { target, packageName } = imported
      const refused =
        (target !== undefined && rule.onlyFrom !== undefined && !startsWithAny(target, rule.onlyFrom)) ||
        (target !== undefined && rule.notFrom !== undefined && startsWithAny(target, rule.notFrom)) ||
        (packageName !== undefined && rule.notPackages?.some((name) => (name.endsWith('/') ? packageName.startsWith(name) : packageName === name)))
      if (refused) found.push(`${file} → ${imported.from}`)
    }
  }
  return found
}

const files = ['src', 'providers', 'verifier', 'client', 'emulators'].flatMap(sourceFiles)

t.test('every layer imports only in its direction', async (t) => {
  for (const rule of RULES) {
    const covered = files.filter((file) => startsWithAny(file, rule.files))
    t.ok(covered.length > 0, `${rule.files.join(', ')}: the rule covers files`)
    t.same(violations(rule, files), [], `${rule.files.join(', ')}: ${rule.why}`)
  }
})

t.test('the check sees imports of every form, and refuses the wrong ones', async (t) => {
  // Probe files are not written to the tree: the check reads them from here.
  const probes: Record<string, string> = {
    'src/sessions/probe.ts': [
      "import { a } from '../http/errors.js'",
      "export { b } from '../config.js'",
      "import type { C } from '../routes/shapes.js'",
      "const d = await import('../app.js')",
      "import Fastify from 'fastify'",
      "import cookie from '@fastify/cookie'",
      "import { e } from './session-store.js'",
    ].join('\n'),
    'providers/probe.ts': "import { f } from '../src/config.js'\nimport { g } from '../src/common/errors.js'",
    'src/storage/probe.ts': "import type { Config } from '../config.js'",
    'src/common/probe.ts': "import { h } from '../storage/redis.js'",
    'verifier/probe.ts': "import { i } from '../src/common/loopback.js'",
  }
  const found = RULES.flatMap((rule) => violations(rule, Object.keys(probes), (file) => probes[file]!))
  t.same(found.sort(), [
    'providers/probe.ts → ../src/config.js',
    'src/common/probe.ts → ../storage/redis.js',
    'src/sessions/probe.ts → ../app.js',
    'src/sessions/probe.ts → ../config.js',
    'src/sessions/probe.ts → ../http/errors.js',
    'src/sessions/probe.ts → ../routes/shapes.js',
    'src/sessions/probe.ts → @fastify/cookie',
    'src/sessions/probe.ts → fastify',
    'src/storage/probe.ts → ../config.js',
    'verifier/probe.ts → ../src/common/loopback.js',
  ])
})
