#!/usr/bin/env node
// `npm run build`: the production build, plain JavaScript that `npm start` runs with no
// TypeScript loader. tsc compiles src/ (with the generated Prisma client), providers/ and
// the operator CLI (scripts/admin.ts) into dist/, keeping the layout, so the files the
// compiled code reads relative to itself are copied to the same places: the demo's static
// files (src/routes/demo.ts) with the client package compiled for it, and the SQL
// migrations (src/storage/migrations.ts).

import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildDemoClient } from './demo-client.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dist = path.join(root, 'dist')

if (!existsSync(path.join(root, 'src/generated/prisma/client.ts'))) {
  console.error('build: the Prisma client is not generated; run `npm ci` (its postinstall generates it)')
  process.exit(1)
}

rmSync(dist, { recursive: true, force: true })
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
})
if (tsc.status !== 0) process.exit(tsc.status ?? 1)

for (const file of readdirSync(path.join(root, 'src/demo'))) {
  if (!file.endsWith('.ts')) cpSync(path.join(root, 'src/demo', file), path.join(dist, 'src/demo', file))
}
buildDemoClient(path.join(dist, 'src/generated/demo-client'))
cpSync(path.join(root, 'prisma/migrations'), path.join(dist, 'prisma/migrations'), { recursive: true })
console.log('build: dist/ is ready; `npm start` runs dist/src/main.js')
