// A throw-away PostgreSQL 15 cluster for tests: initdb into a fresh temp dir, run
// `postgres` on a free 127.0.0.1 port, stop and start it again on demand (outage
// tests), and never outlive the process that started it.
//
// The server refuses to run as root, so when the caller is root the server runs as
// the `postgres` user (spawned with its uid/gid) and the temp dir is handed to it.

import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const PG_BIN = process.env.POSTGRES_BIN_DIR ?? '/usr/lib/postgresql/15/bin'

/** Server settings chosen for speed: the data is thrown away. */
const SERVER_SETTINGS = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '300',
  shared_buffers: '32MB',
  max_wal_size: '256MB',
  checkpoint_timeout: '30min',
  autovacuum: 'off',
  log_min_messages: 'warning',
  log_min_error_statement: 'panic',
  log_checkpoints: 'off',
  log_connections: 'off',
  log_disconnections: 'off',
}

/** Servers still running, killed if this process exits without stopping them. */
const running = new Set()
let exitHookInstalled = false

function installExitHook() {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGQUIT') // immediate shutdown: nothing to keep
      } catch {}
    }
  })
  // A signal nobody handles ends the process without 'exit': then stop the servers
  // and let the signal do what it would have done. When the caller handles the
  // signal itself, it decides when to exit (and 'exit' or the watchdog cleans up).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return
      for (const child of running) {
        try {
          child.kill('SIGQUIT')
        } catch {}
      }
      process.removeListener(signal, onSignal)
      process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

/** uid/gid to run the server with: the postgres user when we are root. */
function serverIdentity() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {}
  const read = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  try {
    return { uid: read('-u'), gid: read('-g') }
  } catch (error) {
    throw new Error('running as root, but there is no `postgres` user to run PostgreSQL as', { cause: error })
  }
}

async function freePort() {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function run(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve(output)
      else reject(new Error(`${path.basename(command)} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${output}`))
    })
  })
}

function tail(file, bytes = 4000) {
  try {
    const text = fs.readFileSync(file, 'utf8')
    return text.slice(-bytes)
  } catch {
    return ''
  }
}

/** Resolves when pg_isready sees the server accept connections. */
async function waitUntilReady(child, port, logFile, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited during start-up (${child.signalCode ?? `exit ${child.exitCode}`}):\n${tail(logFile)}`)
    }
    try {
      await run(path.join(PG_BIN, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-t', '1'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      })
      return
    } catch {}
    if (Date.now() > deadline) throw new Error(`postgres did not become ready on port ${port} within ${timeoutMs} ms:\n${tail(logFile)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * A watchdog outside this process: once this process is gone (even killed with
 * SIGKILL), it shuts the server down and removes the temp dir.
 */
function startWatchdog(baseDir, dataDir) {
  const script = [
    // alive = exists and is not a zombie waiting to be reaped
    'alive() { kill -0 "$1" 2>/dev/null && [ "$(sed \'s/.*) //\' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }',
    'while alive "$1"; do sleep 1; done',
    'if [ -f "$3/postmaster.pid" ]; then',
    '  pid=$(head -n 1 "$3/postmaster.pid")',
    '  kill -QUIT "$pid" 2>/dev/null',
    '  n=0; while alive "$pid" && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done',
    'fi',
    'rm -rf "$2"',
  ].join('\n')
  const watchdog = spawn('/bin/sh', ['-c', script, 'pg-watchdog', String(process.pid), baseDir, dataDir], {
    detached: true,
    stdio: 'ignore',
  })
  watchdog.unref()
}

/**
 * Starts a fresh PostgreSQL cluster (trust auth, superuser `postgres`) on a free
 * 127.0.0.1 port.
 * @returns {Promise<{ url: string, port: number, stop(): Promise<void>, start(): Promise<void> }>}
 */
export async function startPostgresCluster() {
  const identity = serverIdentity()
  const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gateway-pg-'))
  if (identity.uid !== undefined) fs.chownSync(baseDir, identity.uid, identity.gid)
  const dataDir = path.join(baseDir, 'data')
  const logFile = path.join(baseDir, 'postgres.log')
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', TZ: 'UTC' }
  const spawnOptions = { ...identity, cwd: baseDir, env }

  installExitHook()
  startWatchdog(baseDir, dataDir)

  await run(
    path.join(PG_BIN, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'],
    spawnOptions,
  )

  const port = await freePort()
  const args = ['-D', dataDir, '-p', String(port)]
  for (const [name, value] of Object.entries(SERVER_SETTINGS)) args.push('-c', `${name}=${value}`)

  /** @type {import('node:child_process').ChildProcess | undefined} */
  let child
  /** @type {Promise<void> | undefined} */
  let exited

  async function start() {
    if (child) return
    const log = fs.openSync(logFile, 'a')
    if (identity.uid !== undefined) fs.fchownSync(log, identity.uid, identity.gid)
    let proc
    try {
      proc = spawn(path.join(PG_BIN, 'postgres'), args, { ...spawnOptions, stdio: ['ignore', log, log] })
    } finally {
      fs.closeSync(log)
    }
    // The exit hook and the watchdog end the server: it must not keep this process alive.
    proc.unref()
    child = proc
    running.add(proc)
    exited = new Promise((resolve) => {
      proc.once('exit', () => {
        running.delete(proc)
        if (child === proc) child = undefined
        resolve()
      })
    })
    const spawnError = new Promise((_, reject) => proc.once('error', reject))
    try {
      await Promise.race([waitUntilReady(proc, port, logFile), spawnError])
    } catch (error) {
      proc.kill('SIGQUIT')
      await exited
      throw error
    }
  }

  async function stop() {
    const proc = child
    if (!proc) return
    const done = exited
    proc.kill('SIGINT') // fast shutdown: disconnect clients, checkpoint, exit
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000)
    await done
    clearTimeout(timer)
  }

  await start()
  return { url: `postgresql://postgres@127.0.0.1:${port}/postgres`, port, stop, start }
}
