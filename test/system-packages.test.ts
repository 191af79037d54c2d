// A newcomer's machine lacks redis-server: `npm test` and `npm run dev` install it
// (scripts/system-packages.sh), or say exactly what to install. The machine here has
// every package, so "missing" is a PATH without redis-server, and the install is a
// dry run that prints the commands it would run.

import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const SCRIPT = fileURLToPath(new URL('../scripts/system-packages.sh', import.meta.url))
const isRoot = process.getuid?.() === 0

/** A directory the unprivileged user below can read (a clone under /root is not). */
function readableDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'system-packages-'))
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A PATH holding only these commands (and so no redis-server). */
function pathWith(commands: string[]): string {
  const dir = readableDir()
  for (const command of commands) {
    const found = spawnSync('/bin/sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).stdout.trim()
    if (found) symlinkSync(found, path.join(dir, command))
  }
  return dir
}

function runScript(args: string[], env: Record<string, string>, uid?: number) {
  let script = SCRIPT
  if (uid !== undefined) {
    script = path.join(readableDir(), 'system-packages.sh')
    copyFileSync(SCRIPT, script)
    chmodSync(script, 0o644)
  }
  const result = spawnSync('/bin/bash', [script, ...args], {
    env,
    cwd: tmpdir(),
    encoding: 'utf8',
    ...(uid === undefined ? {} : { uid, gid: uid }),
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

t.test('a machine that has every package installs nothing', async (t) => {
  const run = runScript(['--dry-run', 'redis-server', 'chromium', 'postgresql-15'], { PATH: process.env.PATH ?? '/usr/bin:/bin' })
  t.equal(run.status, 0)
  t.equal(run.stdout + run.stderr, '', 'not a word')
})

t.test('as root, a missing redis-server is installed with apt-get and its service stopped again', { skip: !isRoot && 'needs root' }, async (t) => {
  const run = runScript(['--dry-run', 'redis-server', 'chromium'], { PATH: pathWith(['id', 'apt-get', 'service']) })
  t.equal(run.status, 0, run.stderr)
  const commands = run.stdout.split('\n').filter((line) => line.startsWith('would run: '))
  t.same(commands, [
    'would run: env DEBIAN_FRONTEND=noninteractive apt-get update -qq',
    'would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server',
    'would run: service redis-server stop',
  ], 'only the missing package, then the system-wide Redis it started is stopped')
})

t.test('without root or password-less sudo, it says exactly what to install and fails', async (t) => {
  // As root, play an ordinary user (nobody); otherwise be ourselves, with no sudo on PATH.
  const run = runScript(['--dry-run', 'redis-server'], { PATH: pathWith(['id', 'apt-get']) }, isRoot ? 65534 : undefined)
  t.equal(run.status, 1)
  t.match(run.stderr, "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends redis-server'")
  t.notMatch(run.stdout, /would run/, 'nothing is attempted')
})
