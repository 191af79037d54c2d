// `npm run bench:instructions`: what a refresh costs, counted in CPU instructions instead of
// time. On a shared machine the req/s and CPU-time figures of `npm run bench` swing by a
// third between runs; the instructions a server executes per request move by a few percent
// (garbage collection and the JIT depend on timing), so they show what a larger change saves. valgrind's callgrind counts every instruction of the server
// process, all its threads (the libuv pool that signs included); redis-server runs outside
// it and is measured by its own INFO figures.
//
// Each target runs alone under valgrind (about 50 times slower, so few requests): warm-up
// requests first (the JIT settles), then the counters are zeroed, the measured requests
// sent, and the counters dumped. The baseline is the same bare sign-only route as
// `npm run bench`; the ratio baseline/gateway is the instruction form of its cost ratio.
//
//   BENCH_WARMUP_REQUESTS=3000   unmeasured requests per target
//   BENCH_REQUESTS=2000          measured requests per target
//   BENCH_CONNECTIONS=8          concurrent connections (one session each)
//   BENCH_ROUNDS=1               measured runs per target (each its own server process)

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { onCleanUp, readNumber, runBench, startRedis, tempDir } from './harness.js'

const WARMUP = readNumber('BENCH_WARMUP_REQUESTS', 3000, 0)
const REQUESTS = readNumber('BENCH_REQUESTS', 2000, 1)
const CONNECTIONS = readNumber('BENCH_CONNECTIONS', 8, 1)
const ROUNDS = readNumber('BENCH_ROUNDS', 1, 1)

interface Target {
  url: string
  path: string
  tokens: string[]
}

async function main(): Promise<number> {
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    console.error('bench:instructions needs valgrind (apt-get install valgrind)')
    return 1
  }
  const dir = await tempDir('gateway-instructions-')
  const redis = await startRedis(dir)
  onCleanUp(() => redis.stop())
  console.log(`${WARMUP} warm-up and ${REQUESTS} measured requests per run, ${CONNECTIONS} connections, ${ROUNDS} round(s)`)
  const perRequest: Record<string, number[]> = { baseline: [], gateway: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of ['baseline', 'gateway'] as const) {
      const instructions = await countInstructions(name, redis.url, dir, round)
      perRequest[name]!.push(instructions / REQUESTS)
      console.log(`round ${round + 1} ${name.padEnd(8)} ${(instructions / REQUESTS / 1000).toFixed(0).padStart(6)} thousand instructions per request`)
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const base = median(perRequest.baseline!)
  const gateway = median(perRequest.gateway!)
  console.log(`\nbaseline (sign only)  ${(base / 1000).toFixed(0)} thousand instructions per request`)
  console.log(`gateway refresh       ${(gateway / 1000).toFixed(0)} thousand instructions per request`)
  console.log(`instruction ratio baseline / gateway = ${(base / gateway).toFixed(3)}   (the goal of npm run bench, ratio >= 0.7, in instructions)`)
  return 0
}

/** Starts the target under callgrind, warms it up, and counts the instructions of the measured requests. */
async function countInstructions(name: 'baseline' | 'gateway', redisUrl: string, dir: string, round: number): Promise<number> {
  const dataDir = join(dir, `${name}-${round}`)
  const outPrefix = join(dir, `callgrind-${name}-${round}`)
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${outPrefix}.%p`, '--dump-line=no', process.execPath, '--import', 'tsx', join(import.meta.dirname, 'instruction-target.ts'), name, redisUrl, dataDir, String(CONNECTIONS)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  onCleanUp(() => child.kill('SIGKILL'))
  let errors = ''
  child.stderr!.on('data', (chunk) => (errors += chunk))
  const target = await firstLine(child).catch((error) => {
    throw new Error(`${name} did not start: ${error.message}\n${errors.split('\n').filter((line) => !line.startsWith('==')).join('\n')}`)
  })
  await load(target, WARMUP)
  callgrindControl('-z', child)
  await load(target, REQUESTS)
  callgrindControl('-d', child)
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  // The dump made by -d is the file with the highest part number.
  const dumps = readdirSync(dir).filter((file) => file.startsWith(`callgrind-${name}-${round}.${child.pid}.`))
  const last = dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).pop()
  if (!last) throw new Error(`callgrind wrote no dump for ${name}`)
  const summary = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, last), 'utf8'))
  if (!summary) throw new Error(`no instruction total in ${last}`)
  return Number(summary[1])
}

function callgrindControl(option: string, child: ChildProcess): void {
  const result = spawnSync('callgrind_control', [option, String(child.pid)], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`callgrind_control ${option} failed: ${result.stderr || result.stdout}`)
}

function firstLine(child: ChildProcess): Promise<Target> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.once('line', (line) => resolve(JSON.parse(line) as Target))
    child.once('exit', (code) => reject(new Error(`exited with code ${code}`)))
  })
}

/** `count` requests over the target's connections, each slot keeping its own rotated token. */
async function load(target: Target, count: number): Promise<void> {
  let sent = 0
  const slot = async (index: number) => {
    while (sent < count) {
      sent++
      const response = await fetch(target.url + target.path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refreshToken: target.tokens[index] }),
      })
      const body = (await response.json()) as { refreshToken?: string }
      if (!response.ok) throw new Error(`${target.path} answered ${response.status}: ${JSON.stringify(body)}`)
      if (body.refreshToken) target.tokens[index] = body.refreshToken
    }
  }
  await Promise.all(target.tokens.map((_, index) => slot(index)))
}

await runBench(main)
