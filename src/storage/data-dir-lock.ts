// One process at a time may open the embedded database. PGlite has no lock of its own: a
// second process that opens the same folder (the operator CLI while the gateway runs) works
// on its own copy in memory, reports success, and its writes are lost or the files left in
// a state that later spins (seen: 100 % CPU for 15 minutes). So every opener takes this
// lock first, and a second one is refused at once.
//
// The lock is a file beside the database folder holding who holds it (pid, host, when the
// process started). It is made with link(2) from a complete temporary file, which fails when
// the lock exists, so a reader never sees a half-written lock. A lock whose process is gone
// (killed, crashed, the machine rebooted) is stale and taken over; the takeover itself is
// serialised by a second lock file, so two processes finding the same stale lock cannot
// both take it. A lock from another host (another container on a shared volume) cannot be
// checked from here and is never taken over: the message says how to clear it by hand.

import { randomUUID } from 'node:crypto'
import { readFileSync, unlinkSync } from 'node:fs'
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'

/** The embedded database is open in another process (or already in this one). */
export class DataDirInUse extends Error {
  constructor(
    message: string,
    /** The lock file, for the operator who must remove it by hand. */
    readonly lockFile: string,
    /** Who holds it, when that could be read. */
    readonly holder?: LockHolder,
  ) {
    super(message)
    this.name = 'DataDirInUse'
  }
}

export interface LockHolder {
  pid: number
  host: string
  /** When the holder took the lock (ISO 8601). */
  since: string
  /** Linux: /proc/sys/kernel/random/boot_id of the holder's machine. */
  bootId?: string
  /** Linux: the holder's start time in clock ticks since boot (/proc/<pid>/stat field 22), to tell a reused pid. */
  startTicks?: string
  /** Unique per acquisition: release removes only its own lock. */
  token: string
}

export interface DataDirLock {
  readonly file: string
  /** Removes the lock if it is still ours; idempotent. */
  release(): Promise<void>
}

/**
 * Tokens of the locks this process holds or is taking, so a second opener in the same
 * process is refused too (the pid alone cannot tell it from an earlier run with our pid).
 */
const ownTokens = new Set<string>()

/** A takeover left behind by a process that died in its middle (a few microseconds of work) is ignored after this long. */
const ABANDONED_TAKEOVER_MS = 10_000

/**
 * Takes the lock `file` or throws DataDirInUse at once. `what` names the locked thing in
 * the message (e.g. "the embedded database in /srv/data/pglite").
 */
export async function lockDataDir(file: string, what: string): Promise<DataDirLock> {
  const own: LockHolder = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    bootId: bootId(),
    startTicks: startTicksOf(process.pid),
    token: randomUUID(),
  }
  ownTokens.add(own.token)
  try {
    return await acquire(file, what, own)
  } catch (error) {
    ownTokens.delete(own.token)
    throw error
  }
}

async function acquire(file: string, what: string, own: LockHolder): Promise<DataDirLock> {
  // Each round either takes the lock, refuses, or removes one stale lock; a few rounds
  // cover another process racing us to the same stale lock.
  for (let round = 0; round < 5; round++) {
    if (await createExclusively(file, own)) return held(file, own)
    const holder = await readHolder(file)
    if (holder === undefined) continue // released between our attempt and the read
    const state = holderState(holder)
    if (state !== 'dead') throw inUse(file, what, holder, state)
    await takeOverStale(file, holder)
  }
  throw new DataDirInUse(`${what} is being locked and unlocked by other processes right now (${file}); try again`, file)
}

function held(file: string, own: LockHolder): DataDirLock {
  // A process that ends without closing the database (process.exit, an uncaught error)
  // still removes its lock. A killed one cannot: its lock is taken over as stale.
  const onExit = () => releaseSync(file, own.token)
  process.once('exit', onExit)
  let released = false
  return {
    file,
    async release() {
      if (released) return
      released = true
      process.removeListener('exit', onExit)
      if ((await readHolder(file).catch(() => undefined))?.token === own.token) await unlink(file).catch(() => {})
      ownTokens.delete(own.token)
    },
  }
}

function releaseSync(file: string, token: string): void {
  try {
    if ((JSON.parse(readFileSync(file, 'utf8')) as LockHolder).token === token) unlinkSync(file)
  } catch {
    // gone already, or not ours
  }
}

/** Creates `file` holding `content` only if it does not exist; the file is complete the moment it appears. */
async function createExclusively(file: string, content: LockHolder): Promise<boolean> {
  const draft = `${file}.${content.pid}.${randomUUID()}`
  await writeFile(draft, `${JSON.stringify(content)}\n`, { flag: 'wx', mode: 0o644 })
  try {
    await link(draft, file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    await unlink(draft).catch(() => {})
  }
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const holder = JSON.parse(text) as LockHolder
    if (Number.isInteger(holder.pid) && typeof holder.host === 'string' && typeof holder.token === 'string') return holder
  } catch {
    // fall through
  }
  // Not written by this code (links appear complete): someone else's file; leave it alone.
  throw new DataDirInUse(`the lock file ${file} is not one this gateway wrote; remove it if no process uses the database`, file)
}

type HolderState = 'alive' | 'dead' | 'unknown'

function holderState(holder: LockHolder): HolderState {
  if (holder.host !== hostname()) return 'unknown'
  // The machine rebooted since: every process of then is gone.
  const boot = bootId()
  if (holder.bootId !== undefined && boot !== undefined && holder.bootId !== boot) return 'dead'
  // Our own pid: this process, or an earlier run that had the same pid (a restarted container).
  if (holder.pid === process.pid) return ownTokens.has(holder.token) ? 'alive' : 'dead'
  try {
    process.kill(holder.pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return 'dead'
    // EPERM: the process exists but belongs to another user.
  }
  // The pid exists; it is the holder only if it started when the holder did.
  const startTicks = startTicksOf(holder.pid)
  if (holder.startTicks !== undefined && startTicks !== undefined && holder.startTicks !== startTicks) return 'dead'
  return 'alive'
}

/**
 * Removes `stale` if it is still the lock, under the takeover lock: two processes that both
 * found it stale would otherwise both remove a lock, and the second would remove the
 * first's fresh one. Whoever does not get the takeover lock just tries again.
 */
async function takeOverStale(file: string, stale: LockHolder): Promise<void> {
  const takeover = `${file}.takeover`
  const own: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomUUID() }
  if (!(await createExclusively(takeover, own))) {
    const modified = await stat(takeover).then((found) => found.mtimeMs, () => undefined)
    if (modified !== undefined && Date.now() - modified > ABANDONED_TAKEOVER_MS) await unlink(takeover).catch(() => {})
    else await new Promise((resolve) => setTimeout(resolve, 20))
    return
  }
  try {
    if ((await readHolder(file))?.token === stale.token) await unlink(file)
  } finally {
    await unlink(takeover).catch(() => {})
  }
}

function inUse(file: string, what: string, holder: LockHolder, state: HolderState): DataDirInUse {
  const who = `process ${holder.pid} on ${holder.host === hostname() ? 'this host' : `host ${holder.host}`} (since ${holder.since})`
  if (holder.pid === process.pid && state === 'alive') {
    return new DataDirInUse(`${what} is already open in this process; one opener at a time (lock ${file})`, file, holder)
  }
  const unknown = state === 'unknown' ? ` This host cannot see that process; if it is gone (an old container), delete ${file}.` : ''
  return new DataDirInUse(`${what} is in use by ${who}: one process at a time may open it (lock ${file}).${unknown}`, file, holder)
}

/** Linux: this boot's id; a lock from another boot is stale whatever its pid. */
function bootId(): string | undefined {
  if (process.platform !== 'linux') return undefined
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return undefined
  }
}

/** Linux: when a process started, in clock ticks since boot; with the pid it names one process. */
function startTicksOf(pid: number): string | undefined {
  if (process.platform !== 'linux') return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The fields after the command name, which is in parentheses and may itself hold ") ";
    // starttime is field 22 of the line, and this list starts at field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3]
  } catch {
    return undefined
  }
}
