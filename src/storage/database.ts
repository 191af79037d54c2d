// Opens the gateway's database: PostgreSQL when DATABASE_URL is set, otherwise an
// embedded PGlite (PostgreSQL in WebAssembly) under the data dir. Either way the
// migrations in prisma/migrations are applied first and the rest of the gateway
// sees one PrismaClient.

import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import { PrismaPGlite } from 'pglite-prisma-adapter'
import { Prisma, PrismaClient } from '../generated/prisma/client.js'
import { StorageUnavailable } from '../common/errors.js'
import { lockDataDir, type DataDirLock } from './data-dir-lock.js'
import { applyMigrations, pgliteMigrationTarget, pgMigrationTarget } from './migrations.js'

/**
 * One plain SQL statement. For the few statements every login runs, where Prisma's own work
 * per query (compiling it, mapping the rows) would be most of their time: measured on
 * PostgreSQL, 0.4-0.5 ms of CPU per query through Prisma against ~0.1 ms here. `name` makes
 * it a prepared statement on PostgreSQL (parsed once per connection).
 */
export interface SqlStatement {
  name: string
  text: string
  values: unknown[]
}

/** Runs a SqlStatement and answers its rows. */
export type RunSql = <Row>(statement: SqlStatement) => Promise<Row[]>

export interface Database {
  prisma: PrismaClient
  /** The same database as `prisma`, by plain SQL (SqlStatement says when). */
  sql: RunSql
  /** 'postgresql' or 'pglite' */
  kind: 'postgresql' | 'pglite'
  /** one cheap round trip; rejects when the database cannot be reached */
  ping(): Promise<void>
  close(): Promise<void>
}

/**
 * Timeouts of the PostgreSQL pool: during an outage a request fails within about 2 s, as
 * it does when Redis stalls (the gateway answers 503), instead of hanging; broken
 * connections are dropped and new ones made when the server is back, without reopening
 * anything. Every statement the gateway runs is an indexed lookup or a small write, far
 * below these limits. They bound each statement, not a request's sum as the Redis budget
 * does: a frozen server fails the request's first statement, and so the request. (Prisma's
 * first use of a query shape compiles it in this process; with a request-wide clock, a
 * cold or busy process would spend the budget on that and answer 503 with the database fine.)
 */
export const POSTGRES_POOL_SETTINGS = {
  /** Connections per gateway process. */
  max: 10,
  /** Giving up on a new connection (server down, unroutable, overloaded). */
  connectionTimeoutMillis: 2_000,
  /** Server-side limit of one statement: the server cancels it and the connection stays usable. */
  statement_timeout: 1_500,
  /** Client-side limit of one query, for a server that stopped answering at all. */
  query_timeout: 2_000,
  /** Waiting for a lock inside the server. */
  lock_timeout: 1_000,
  /** A transaction left idle (e.g. a client stuck mid-transaction) is ended by the server. */
  idle_in_transaction_session_timeout: 10_000,
  /** Idle connections are closed after this long. */
  idleTimeoutMillis: 10_000,
  /** Detect dead peers on idle connections. */
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000,
} as const

const PGLITE_MEMORY = 'memory://'

export async function openDatabase(options: { databaseUrl?: string; dataDir: string }): Promise<Database> {
  if (options.databaseUrl) return await openPostgres(options.databaseUrl)
  return await openPglite(options.dataDir)
}

async function openPostgres(databaseUrl: string): Promise<Database> {
  const migrator = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000, application_name: 'gateway-migrate' })
  // A connection lost while idle is reported here; the next query rejects anyway.
  migrator.on('error', () => {})
  await migrator.connect()
  try {
    await applyMigrations(pgMigrationTarget(migrator))
  } finally {
    await migrator.end().catch(() => {})
  }

  const pool = new pg.Pool({ connectionString: databaseUrl, application_name: 'gateway', ...POSTGRES_POOL_SETTINGS })
  // Errors of idle pooled connections (server restarted, network cut): the pool drops
  // the connection by itself; without a listener they would crash the process.
  pool.on('error', () => {})
  // pg-pool hands a released connection to the next waiter synchronously, while the
  // socket's data is still being parsed, and takes its own error listener off first:
  // a FATAL (pg_terminate_backend, shutdown) in the same TCP chunk as the previous
  // query's answer is then emitted with no listener at all and would crash the process.
  // A connection that errs stays unusable (its queries reject, the pool discards it on
  // release), so a listener of our own on every connection only keeps the process up.
  pool.on('connect', (connection) => connection.on('error', () => {}))
  const adapter = new PrismaPg(pool, { disposeExternalPool: true })
  const prisma = new PrismaClient({ adapter })
  return {
    prisma,
    sql: async <Row>(statement: SqlStatement) => (await pool.query(statement)).rows as Row[],
    kind: 'postgresql',
    ping: () => ping(prisma),
    close: async () => {
      await prisma.$disconnect()
    },
  }
}

async function openPglite(dataDir: string): Promise<Database> {
  let db: PGlite
  // PGlite keeps no lock of its own: a second process on the same folder would lose its
  // writes (see data-dir-lock.ts), so every opener of a folder takes this one first.
  let lock: DataDirLock | undefined
  if (dataDir === PGLITE_MEMORY) {
    db = new PGlite(PGLITE_MEMORY)
  } else {
    const dir = path.resolve(dataDir, 'pglite')
    await mkdir(dir, { recursive: true })
    lock = await lockDataDir(`${dir}.lock`, `the embedded database in ${dir}`)
    try {
      db = new PGlite(dir)
    } catch (error) {
      await lock.release()
      throw error
    }
  }
  try {
    await db.waitReady
    await applyMigrations(pgliteMigrationTarget(db))
  } catch (error) {
    await db.close().catch(() => {})
    await lock?.release()
    throw error
  }

  const prisma = new PrismaClient({ adapter: new PrismaPGlite(db) })
  return {
    prisma,
    // Run exclusively of PGlite's transactions (Prisma's), as every PGlite query is.
    sql: async <Row>({ text, values }: SqlStatement) => (await db.query<Row>(text, values)).rows,
    kind: 'pglite',
    ping: () => ping(prisma),
    close: async () => {
      try {
        await prisma.$disconnect()
        if (!db.closed) await db.close()
      } finally {
        await lock?.release()
      }
    },
  }
}

async function ping(prisma: PrismaClient): Promise<void> {
  await prisma.$executeRawUnsafe('SELECT 1')
}

/** Prisma error codes that mean the database cannot be reached or did not answer in time. */
const UNAVAILABLE_PRISMA_CODES = new Set([
  'P1001', // can't reach database server
  'P1002', // database server reached but timed out
  'P1008', // operations timed out
  'P1017', // server has closed the connection
  'P2024', // timed out fetching a new connection from the pool
  'P2037', // too many database connections opened
])

/** Driver-adapter error kinds (Prisma's DriverAdapterError.cause.kind) of the same meaning. */
const UNAVAILABLE_ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TlsConnectionError'])

/** Node socket errors. */
const UNAVAILABLE_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
])

/** PostgreSQL SQLSTATEs: connection exceptions, shutdowns, timeouts, overload. */
function isUnavailableSqlState(code: string): boolean {
  return (
    code.startsWith('08') || // connection_exception class
    code === '57P01' || // admin_shutdown
    code === '57P02' || // crash_shutdown
    code === '57P03' || // cannot_connect_now (starting up / shutting down)
    code === '57014' || // query_canceled: statement_timeout
    code === '55P03' || // lock_not_available: lock_timeout
    code === '53300' || // too_many_connections
    code === '25P03' // idle_in_transaction_session_timeout
  )
}

/** Messages of `pg` / `pg-pool` errors that carry no code. */
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i, // "Connection terminated unexpectedly", "... due to connection timeout"
  /timeout exceeded when trying to connect/i, // pg-pool connectionTimeoutMillis
  /query read timeout/i, // pg query_timeout
  /not queryable/i, // "Client has encountered a connection error and is not queryable"
  /connection (is )?closed/i,
  /cannot use a pool after calling end/i,
  /server closed the connection/i,
  /can't reach database server/i,
  /PGlite is closed/i, // the embedded database was closed (shutting down)
]

/**
 * True when `error` means the database cannot be reached or did not answer in time
 * (the gateway should answer 503 and retry later), false for ordinary query errors
 * such as a unique violation.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>()
  const visit = (value: unknown, depth: number): boolean => {
    if (value === null || typeof value !== 'object' || seen.has(value) || depth > 8) return false
    seen.add(value)

    if (value instanceof Prisma.PrismaClientInitializationError) return true
    if (value instanceof Prisma.PrismaClientRustPanicError) return true

    const record = value as Record<string, unknown>
    const code = record.code ?? record.errorCode
    if (typeof code === 'string') {
      if (UNAVAILABLE_PRISMA_CODES.has(code) || UNAVAILABLE_SOCKET_CODES.has(code)) return true
      if (/^[0-9A-Z]{5}$/.test(code) && isUnavailableSqlState(code)) return true
    }
    if (record.name === 'DriverAdapterError' || typeof record.kind === 'string') {
      const kind = record.kind ?? (record.cause as { kind?: unknown } | undefined)?.kind
      if (typeof kind === 'string' && UNAVAILABLE_ADAPTER_KINDS.has(kind)) return true
      const originalCode = (record.cause as { originalCode?: unknown } | undefined)?.originalCode ?? record.originalCode
      if (typeof originalCode === 'string' && isUnavailableSqlState(originalCode)) return true
    }
    // Known request errors carry a specific code: only the codes above mean unavailable,
    // or a driver error inside (raw queries fail as P2010 around one).
    if (value instanceof Prisma.PrismaClientKnownRequestError) {
      // No connection within the transaction's maxWait: the interactive/batch
      // transaction flavour of a pool timeout (seen with a hung server).
      if (value.code === 'P2028' && /unable to start a transaction in the given time/i.test(value.message)) return true
      return visit(value.meta, depth + 1) || visit(value.cause, depth + 1)
    }
    const message = record.message
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message))) return true

    if (value instanceof AggregateError && value.errors.some((inner) => visit(inner, depth + 1))) return true
    return visit(record.cause, depth + 1) || visit(record.meta, depth + 1) || visit(record.driverAdapterError, depth + 1)
  }
  return visit(error, 0)
}

/** Runs one database interaction; an unreachable database becomes StorageUnavailable (503). */
export async function inDatabase<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    if (isDatabaseUnavailable(error)) throw new StorageUnavailable('the user database is unavailable', { cause: error })
    throw error
  }
}
