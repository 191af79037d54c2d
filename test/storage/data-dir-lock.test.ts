// One process at a time on the embedded database: a second opener of the same data folder
// (another process, or the same one again) is refused at once, with a message that says who
// holds it, instead of working on a copy whose writes are lost. A lock left by a process
// that is gone is taken over; one that may still be alive never is.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import t, { type Test } from 'tap'
import { DataDirInUse, lockDataDir } from '../../src/storage/data-dir-lock.js'
import { openDatabase } from '../../src/storage/database.js'

// Several fresh PGlite folders on disk, each a few seconds to initialise (more on a busy machine).
t.setTimeout(300_000)

async function dataDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gateway-lock-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const lockFileOf = (dir: string) => path.join(dir, 'pglite.lock')

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}

/** Another process holding the database under `dir`, until it is told to let go. */
async function holder(t: Test, dir: string, ...args: string[]): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/hold-database.ts', dir, ...args], { stdio: 'pipe' })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
  if (line !== 'open') throw new Error(`the holder did not open the database: ${line}`)
  return child
}

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''])
  await once(child, 'exit')
  return child.pid!
}

/** A lock file as a process on this host would have left it. */
function lockOf(pid: number, extra: Record<string, unknown> = {}) {
  return JSON.stringify({ pid, host: os.hostname(), since: '2026-01-01T00:00:00.000Z', token: `left-by-${pid}`, ...extra })
}

t.test('a second process on the same data folder is refused at once, and may open it once the first lets go', async (t) => {
  const dir = await dataDir(t)
  const first = await holder(t, dir)

  const started = Date.now()
  const refused = await rejection(openDatabase({ dataDir: dir }))
  const took = Date.now() - started
  t.type(refused, DataDirInUse)
  t.match(refused.message, `the embedded database in ${path.join(dir, 'pglite')} is in use by process ${first.pid} on this host`)
  t.match(refused.message, 'one process at a time may open it')
  t.ok(took < 2000, `refused in ${took} ms, without waiting for the database`)

  first.stdin.end()
  t.equal((await once(first, 'exit'))[0], 0)
  t.notOk(existsSync(lockFileOf(dir)), 'closing the database removed the lock')
  const second = await openDatabase({ dataDir: dir })
  t.equal(JSON.parse(await readFile(lockFileOf(dir), 'utf8')).pid, process.pid, 'the lock is ours now')
  await second.close()
  t.notOk(existsSync(lockFileOf(dir)))
})

t.test('a process that exits without closing the database removes its lock on the way out', async (t) => {
  const dir = await dataDir(t)
  const child = await holder(t, dir, '--exit')
  t.ok(existsSync(lockFileOf(dir)))
  child.stdin.end()
  await once(child, 'exit')
  t.notOk(existsSync(lockFileOf(dir)), 'released at exit')
})

t.test('the lock of a killed process is taken over', async (t) => {
  const dir = await dataDir(t)
  const child = await holder(t, dir)
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.equal(JSON.parse(readFileSync(lockFileOf(dir), 'utf8')).pid, child.pid, 'a killed process leaves its lock behind')

  const database = await openDatabase({ dataDir: dir })
  t.teardown(() => database.close())
  t.equal(JSON.parse(await readFile(lockFileOf(dir), 'utf8')).pid, process.pid, 'taken over')
  t.equal(Number((await database.prisma.$queryRawUnsafe<{ n: number }[]>('SELECT 1 AS n'))[0]!.n), 1, 'and the database works')
})

t.test('the same process cannot open the folder twice either', async (t) => {
  const dir = await dataDir(t)
  const database = await openDatabase({ dataDir: dir })
  t.teardown(() => database.close())
  const refused = await rejection(openDatabase({ dataDir: dir }))
  t.type(refused, DataDirInUse)
  t.match(refused.message, 'is already open in this process')
})

t.test('whose lock is stale: a dead pid, a reused pid, a past boot; alive or unknowable is never taken', async (t) => {
  const dir = await dataDir(t)
  const file = path.join(dir, 'data.lock')
  const take = async () => {
    const lock = await lockDataDir(file, 'the test folder')
    await lock.release()
    return true
  }

  await writeFile(file, lockOf(await deadPid()))
  t.ok(await take(), 'a pid that no longer runs: taken over')

  const sleeper = spawn('sleep', ['60'])
  t.teardown(() => sleeper.kill('SIGKILL'))
  await once(sleeper, 'spawn')
  const startTicks = readFileSync(`/proc/${sleeper.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[22 - 3]
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()

  await writeFile(file, lockOf(sleeper.pid!, { startTicks, bootId }))
  const alive = await rejection(take())
  t.type(alive, DataDirInUse, 'a live holder keeps its lock')
  t.match(alive.message, `in use by process ${sleeper.pid} on this host`)
  t.ok(existsSync(file), 'and its file')

  await writeFile(file, lockOf(sleeper.pid!, { startTicks: String(Number(startTicks) - 1), bootId }))
  t.ok(await take(), 'the pid runs, but it is another process than the holder (started at another time): taken over')

  await writeFile(file, lockOf(sleeper.pid!, { startTicks, bootId: '00000000-0000-0000-0000-000000000000' }))
  t.ok(await take(), 'a lock from before the last reboot: taken over')

  await writeFile(file, lockOf(process.pid))
  t.ok(await take(), 'our own pid, from an earlier run (a restarted container): taken over')

  await writeFile(file, lockOf(await deadPid(), { host: 'another-container' }))
  const elsewhere = await rejection(take())
  t.match(elsewhere.message, 'in use by process')
  t.match(elsewhere.message, 'on host another-container')
  t.match(elsewhere.message, `if it is gone (an old container), delete ${file}`, 'says how to clear it by hand')
  t.ok(existsSync(file), 'a lock of another host is never taken over: its process cannot be checked from here')

  await writeFile(file, 'not json')
  t.match((await rejection(take())).message, `the lock file ${file} is not one this gateway wrote`)
})

t.test('a stale lock that another process is taking over right now is left to it', async (t) => {
  const dir = await dataDir(t)
  const file = path.join(dir, 'data.lock')
  const stale = lockOf(await deadPid())
  await writeFile(file, stale)
  // What a live process in the middle of a takeover holds (for microseconds, normally).
  await writeFile(`${file}.takeover`, lockOf(process.ppid))
  const refused = await rejection(lockDataDir(file, 'the test folder'))
  t.type(refused, DataDirInUse)
  t.match(refused.message, 'try again')
  t.equal(await readFile(file, 'utf8'), stale, 'the stale lock is not removed behind the taker\'s back')

  // A takeover whose process died in its middle is abandoned after a few seconds.
  const longAgo = new Date(Date.now() - 60_000)
  await utimes(`${file}.takeover`, longAgo, longAgo)
  const lock = await lockDataDir(file, 'the test folder')
  t.equal(JSON.parse(await readFile(file, 'utf8')).pid, process.pid, 'then the stale lock is taken over')
  await lock.release()
})

t.test('processes racing for one stale lock: exactly one gets it', async (t) => {
  const dir = await dataDir(t)
  const file = path.join(dir, 'data.lock')
  await writeFile(file, lockOf(await deadPid()))
  const contenders = Array.from({ length: 5 }, () => spawn(process.execPath, ['--import', 'tsx', 'test/support/race-lock.ts', file], { stdio: 'pipe' }))
  t.teardown(() => contenders.forEach((contender) => contender.kill('SIGKILL')))
  const lines = contenders.map((contender) => createInterface({ input: contender.stdout }))
  await Promise.all(lines.map((input) => once(input, 'line')))
  for (const contender of contenders) contender.stdin.write('go\n')
  const outcomes = await Promise.all(lines.map(async (input) => ((await once(input, 'line')) as [string])[0]))
  t.equal(outcomes.filter((outcome) => outcome === 'won').length, 1, `one winner: ${outcomes.join(' ')}`)
  t.equal(outcomes.filter((outcome) => outcome === 'refused').length, 4, 'the others are refused')
  for (const contender of contenders) contender.stdin.end()
  await Promise.all(contenders.map((contender) => once(contender, 'exit')))
  t.same(readdirSync(dir), [], 'the winner released it; no temporary or takeover file left behind')
})

t.test('openers racing for one stale lock in one process: exactly one gets it', async (t) => {
  const dir = await dataDir(t)
  const file = path.join(dir, 'data.lock')
  await writeFile(file, lockOf(await deadPid()))
  const attempts = await Promise.allSettled(Array.from({ length: 8 }, () => lockDataDir(file, 'the test folder')))
  const won = attempts.filter((attempt) => attempt.status === 'fulfilled')
  t.equal(won.length, 1, 'one winner')
  for (const attempt of attempts) if (attempt.status === 'rejected') t.type(attempt.reason, DataDirInUse)
  const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof lockDataDir>>>).value
  t.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid)
  await winner.release()
  t.notOk(existsSync(file))
  t.same(readdirSync(dir), [], 'no temporary or takeover file left behind')
})
