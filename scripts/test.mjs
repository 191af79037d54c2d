#!/usr/bin/env node
// `npm test`: runs the tap suite against one throw-away PostgreSQL cluster and
// ends with a plain `N passed, N failed` line (tap's own summary is not one CI
// recognises).
//
//   npm test                                   # every test/**/*.test.ts
//   npm test -- test/emulators/google.test.ts  # one file (any tap args pass through)
//
// The whole suite (no arguments) then runs the tests of the packages in this repository
// (verifier/ and client/: `npm test` in each), counted into the same line.
//
// Missing system packages (redis-server, chromium, postgresql-15, python3-jwt, openssl) are installed first:
// see scripts/system-packages.sh.
// The test files get TEST_POSTGRES_URL (an admin URL of the shared cluster).
// tap's report is printed as TAP (its `tap` reporter) so that it can be counted;
// a --reporter given on the command line is overridden.
// N counts test points: assertions, plus any failing subtest whose failure has
// no failing assertion of its own (a crash, a timeout, a missing plan).

import { spawn, spawnSync } from 'node:child_process'
import { constants } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Parser } from 'tap-parser'

import { buildDemoClient } from './demo-client.mjs'
import { startPostgresCluster } from './postgres-cluster.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** Packages with tests of their own, run after the gateway's when the whole suite runs. */
const PACKAGES = ['verifier', 'client']

function fail(message) {
  console.error(`npm test: ${message}`)
  process.exit(1)
}

// The tests run on a real Redis, one PostgreSQL 15 cluster and Debian's Chromium (the
// demo's browser test): whatever the machine lacks is installed first, or the script
// says what to install.
const packages = spawnSync('bash', [path.join(root, 'scripts', 'system-packages.sh'), 'redis-server', 'chromium', 'postgresql-15', 'python3-jwt', 'openssl'], {
  stdio: ['ignore', 2, 2], // stdout stays the TAP report
})
if (packages.error || packages.status !== 0) {
  fail('the system packages the tests need are missing (see above)')
}

/** Failing test points, named by their subtests, to repeat under the report: a CI log shows its tail. */
const failures = []

/** Counts leaf test points of a TAP stream, subtests included. */
function track(parser, trail = []) {
  const counts = { pass: 0, fail: 0, skip: 0 }
  const add = (c) => {
    counts.pass += c.pass
    counts.fail += c.fail
    counts.skip += c.skip
  }
  let pending // the subtest whose closing point has not been seen yet
  const flush = () => {
    if (pending) add(pending.counts)
    pending = undefined
  }
  parser.on('child', (child) => {
    flush()
    pending = track(child, [...trail, child.name])
  })
  parser.on('assert', (result) => {
    const child = pending
    pending = undefined
    const skipped = Boolean(result.skip || result.todo)
    const inner = child ? child.counts.pass + child.counts.fail + child.counts.skip : 0
    if (child && inner > 0) {
      add(child.counts)
      if (!result.ok && !skipped && child.counts.fail === 0) {
        counts.fail += 1
        failures.push([...trail, result.name].join(' > '))
      }
      return
    }
    if (skipped) counts.skip += 1
    else if (result.ok) counts.pass += 1
    else {
      counts.fail += 1
      failures.push([...trail, result.name].join(' > '))
    }
  })
  parser.on('complete', flush)
  return { counts }
}

let cluster
let child
let signalled

async function stopCluster() {
  const c = cluster
  cluster = undefined
  if (!c) return
  try {
    await c.stop()
  } catch (error) {
    console.error(`npm test: stopping PostgreSQL failed: ${error?.message ?? error}`)
  }
}

// tap runs in its own process group: a signal goes to tap and to every test
// process (tap 21 does not pass it on to them reliably), and a second signal, or
// 10 s of waiting, ends the whole group. The run ends when tap has exited, and the
// cluster is stopped then.
function signalTap(signal) {
  try {
    process.kill(-child.pid, signal)
  } catch {}
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (signalled) {
      if (child) signalTap('SIGKILL')
      return
    }
    signalled = signal
    if (child) {
      signalTap(signal)
      setTimeout(() => signalTap('SIGKILL'), 10_000).unref()
    } else {
      stopCluster().finally(() => process.exit(128 + constants.signals[signal]))
    }
  })
}

// The demo page runs on the client package, compiled for it (the browser test loads it).
buildDemoClient()

try {
  cluster = await startPostgresCluster()
} catch (error) {
  fail(`could not start PostgreSQL for the tests: ${error?.message ?? error}`)
}
if (signalled) {
  await stopCluster()
  process.exit(128 + constants.signals[signalled])
}

const parser = new Parser()
const tally = track(parser)

/** Runs tap in `cwd` (its own package.json says which files), its TAP report counted into the tally. */
function runTap(cwd, args) {
  const tapBin = path.join(root, 'node_modules', '.bin', 'tap')
  child = spawn(tapBin, [...args, '--reporter=tap'], {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
    env: { ...process.env, TEST_POSTGRES_URL: cluster.url },
  })
  const packageParser = cwd === root ? parser : new Parser()
  if (packageParser !== parser) {
    const counted = track(packageParser, [`${path.basename(cwd)}/`])
    packageParser.on('complete', () => {
      for (const key of ['pass', 'fail', 'skip']) tally.counts[key] += counted.counts[key]
    })
  }
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk)
    packageParser.write(chunk)
  })
  return new Promise((resolve) => {
    child.once('error', (error) => {
      console.error(`npm test: could not run tap: ${error.message}`)
      resolve(1)
    })
    child.once('close', (code, signal) => {
      if (packageParser !== parser) packageParser.end()
      resolve(signal ? 128 + (constants.signals[signal] ?? 0) : code ?? 1)
    })
  })
}

const fileArgs = process.argv.slice(2)
let status = await runTap(root, fileArgs)
// The packages of this repository test themselves (`npm test` in each); the whole suite runs them too.
if (fileArgs.length === 0) {
  for (const name of PACKAGES) {
    if (signalled) break
    console.log(`# npm test in ${name}/`)
    const packageStatus = await runTap(path.join(root, name), [])
    if (status === 0) status = packageStatus
  }
}
parser.end()
await stopCluster()

const { pass, fail: failed, skip } = tally.counts
if (failures.length > 0) console.log(`# failed:\n${failures.map((name) => `#   ${name}`).join('\n')}`)
console.log(`${pass} passed, ${failed} failed${skip ? `, ${skip} skipped` : ''}`)
process.exit(status === 0 && failed > 0 ? 1 : status)
