// A real redis-server for tests, on a free loopback port.
//
// The server runs under a tiny `sh` guard whose stdin is a pipe from this
// process: if the test process dies in any way (even SIGKILL from a tap
// timeout), the pipe closes and the guard stops redis. On a normal exit,
// process.on('exit') kills it directly. Either way no redis-server outlives
// the test, and tap never waits on a stray process.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { TestCertificates } from './tls-certificates.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>`, or `rediss://` with TLS */
  url: string;
  port: number;
  /** SIGTERM the server and wait until it has exited. */
  stop(): Promise<void>;
  /**
   * Start the server again on the same port (after stop() or crash()), with `args` added to
   * its own (e.g. `['--replicaof', …]`); resolves once it answers PING.
   */
  start(args?: string[]): Promise<void>;
  /** SIGSTOP: the server stops answering but keeps its connections open. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGSTOP now, SIGCONT `ms` later from a process of its own: it comes even while this one is too busy to run a timer. */
  pauseFor(ms: number): void;
  /** SIGKILL, as a machine that dies: no shutdown, no goodbye to replicas; resolves once it has exited. */
  crash(): Promise<void>;
}

export interface TestRedisOptions {
  /** More redis-server arguments, e.g. `['--cluster-enabled', 'yes']` or `['--sentinel']`. */
  args?: string[];
  /** A config file, written into the server's own directory and read first (a Sentinel rewrites its own). */
  config?: string;
  /** TLS only, with this certificate; no plain TCP port. */
  tls?: TestCertificates;
  /** With `tls`: clients must show a certificate the authority signed (tls-auth-clients yes, Redis' default); else none is asked for. */
  clientCertificates?: boolean;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

// Runs redis-server with the arguments given, prints its pid, and stops it
// when stdin reaches EOF (parent gone or stop()). Exits with redis' status.
// (sh gives background jobs /dev/null as stdin, so the pipe is kept on fd 3.)
const GUARD = [
  'exec 3<&0',
  'redis-server "$@" 3<&- &',
  'pid=$!',
  'echo "pid:$pid"',
  '( read -r _unused <&3; kill -CONT "$pid"; kill -TERM "$pid" ) >/dev/null 2>&1 &',
  'exec 3<&-',
  'wait "$pid"',
].join('\n');

interface Running {
  guard: ChildProcess;
  pid: number;
  exited: Promise<void>;
  hasExited: boolean;
}

const live = new Set<Running>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const r of live) {
      try { process.kill(r.pid, 'SIGKILL'); } catch { /* already gone */ }
      try { r.guard.kill('SIGKILL'); } catch { /* already gone */ }
    }
    for (const dir of dirs) {
      try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
    }
  });
}

let redisChecked = false;
function assertRedisInstalled(): void {
  if (redisChecked) return;
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    throw new Error(
      'redis-server is not on PATH; the tests need a real Redis. Install it with `apt-get install redis-server` (Debian/Ubuntu).',
    );
  }
  redisChecked = true;
}

async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket; true when the server answers +PONG. */
async function ping(port: number, tls: TestCertificates | undefined, timeoutMs = 500): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const sock: Socket = tls ? connectTls({ host: HOST, port, ...tls.clientTls }) : createConnection({ host: HOST, port });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('error', () => done(false));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      // A server that requires a password answers too, with NOAUTH: it is up.
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH'));
    });
    sock.once(tls ? 'secureConnect' : 'connect', () => sock.write('PING\r\n'));
  });
}

function launch(port: number, dir: string, options: TestRedisOptions): { running: Running; ready: Promise<void> } {
  const args = [
    ...(options.config === undefined ? [] : [join(dir, 'redis.conf')]),
    ...(options.tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile, '--tls-ca-cert-file', options.tls.caFile, '--tls-auth-clients', options.clientCertificates ? 'yes' : 'no']
      : ['--port', String(port)]),
    '--bind', HOST,
    '--save', '',
    '--appendonly', 'no',
    '--maxmemory-policy', 'noeviction',
    '--dir', dir,
    '--loglevel', 'warning',
    '--daemonize', 'no',
    ...(options.args ?? []),
  ];
  const guard = spawn('/bin/sh', ['-c', GUARD, 'redis-guard', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: dir,
  });
  let output = '';
  let resolvePid!: (pid: number) => void;
  const pidKnown = new Promise<number>((resolve) => { resolvePid = resolve; });
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
    const m = /pid:(\d+)/.exec(output);
    if (m) resolvePid(Number(m[1]));
  };
  guard.stdout!.on('data', collect);
  guard.stderr!.on('data', collect);

  const running: Running = { guard, pid: 0, exited: Promise.resolve(), hasExited: false };
  running.exited = new Promise<void>((resolve) => {
    guard.once('exit', () => {
      running.hasExited = true;
      live.delete(running);
      guard.stdin?.destroy();
      resolve();
    });
  });
  guard.once('error', () => { /* reported through exit / readiness */ });

  // Do not let the server keep the test process alive: process.on('exit') and
  // the stdin guard clean up when the test is done.
  const unrefAll = () => {
    guard.unref();
    for (const s of [guard.stdin, guard.stdout, guard.stderr]) {
      (s as unknown as { unref?: () => void } | null)?.unref?.();
    }
  };

  const ready = (async () => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const pid = await Promise.race([
      pidKnown,
      running.exited.then(() => 0),
      new Promise<number>((r) => setTimeout(() => r(-1), READY_TIMEOUT_MS)),
    ]);
    if (pid <= 0) {
      throw new Error(`redis-server did not start on ${HOST}:${port}: ${output.trim() || 'no output'}`);
    }
    running.pid = pid;
    live.add(running);
    while (Date.now() < deadline) {
      if (running.hasExited) break;
      if (await ping(port, options.tls)) {
        unrefAll();
        return;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    await kill(running);
    throw new Error(`redis-server on ${HOST}:${port} did not answer PING: ${output.trim() || 'no output'}`);
  })();

  return { running, ready };
}

async function kill(r: Running): Promise<void> {
  if (r.hasExited) return;
  r.guard.ref();
  try { process.kill(r.pid, 'SIGCONT'); } catch { /* gone */ }
  try { process.kill(r.pid, 'SIGTERM'); } catch { /* gone */ }
  const timer = setTimeout(() => {
    try { process.kill(r.pid, 'SIGKILL'); } catch { /* gone */ }
  }, STOP_TIMEOUT_MS);
  await r.exited;
  clearTimeout(timer);
}

export async function startRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  assertRedisInstalled();
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'test-redis-'));
  dirs.add(dir);
  if (options.config !== undefined) writeFileSync(join(dir, 'redis.conf'), options.config);

  // A free port can be taken between probing and binding: retry a few times.
  let port = 0;
  let current: Running | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 5 && !current; attempt++) {
    port = await freePort();
    const { running, ready } = launch(port, dir, options);
    try {
      await ready;
      current = running;
    } catch (err) {
      lastError = err;
    }
  }
  if (!current) throw lastError;

  const handle: TestRedis = {
    url: `${options.tls ? 'rediss' : 'redis'}://${HOST}:${port}`,
    port,
    async stop() {
      if (current) {
        const r = current;
        current = undefined;
        await kill(r);
      }
    },
    async start(args = []) {
      if (current && !current.hasExited) return;
      const { running, ready } = launch(port, dir, { ...options, args: [...(options.args ?? []), ...args] });
      await ready;
      current = running;
    },
    pause() {
      if (!current) throw new Error('redis is not running');
      process.kill(current.pid, 'SIGSTOP');
    },
    resume() {
      if (!current) throw new Error('redis is not running');
      process.kill(current.pid, 'SIGCONT');
    },
    pauseFor(ms) {
      handle.pause();
      spawn('/bin/sh', ['-c', `sleep ${ms / 1000}; kill -CONT ${current!.pid}`], { stdio: 'ignore' }).unref();
    },
    async crash() {
      if (!current) throw new Error('redis is not running');
      const r = current;
      current = undefined;
      r.guard.ref();
      process.kill(r.pid, 'SIGKILL');
      await r.exited;
    },
  };
  return handle;
}
