#!/usr/bin/env node
// Compiles the client package (client/src) into the one plain ES module the demo page loads
// as /demo/client.js (src/routes/demo.ts): the demo is a web app on the same client a
// product's web app uses. Run by `npm run build` (into dist/), and by `npm run dev` and
// `npm test` (into src/generated/, which the gateway run from source reads).
//
//   node scripts/demo-client.mjs [outDir]   # default: src/generated/demo-client

import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Writes `index.js` into `outDir`; exits the process when tsc fails. */
export function buildDemoClient(outDir = path.join(root, 'src/generated/demo-client')) {
  const tsc = spawnSync(
    process.execPath,
    [
      path.join(root, 'node_modules/typescript/bin/tsc'),
      ...['-p', path.join(root, 'client/tsconfig.json'), '--outDir', outDir],
      // One file for the browser: no declarations, no source map for it to ask for.
      ...['--declaration', 'false', '--sourceMap', 'false', '--inlineSources', 'false'],
    ],
    { cwd: root, stdio: 'inherit' },
  )
  if (tsc.status !== 0) {
    console.error('the demo page\'s client (client/src) does not compile')
    process.exit(tsc.status ?? 1)
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) buildDemoClient(process.argv[2])
