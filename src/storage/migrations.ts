// Applies prisma/migrations/*/migration.sql at start-up and records them in
// `_prisma_migrations` exactly as Prisma Migrate does, because Prisma's native schema
// engine (which `prisma migrate deploy` needs) cannot be installed everywhere we run.
// A database migrated here is accepted by `prisma migrate deploy/status`, and one
// migrated by Prisma is accepted here.
//
// Like Prisma:
//   - migrations are the directories under prisma/migrations, applied in name order;
//   - each is recorded with a random uuid id, the lowercase sha256 hex of its file as
//     checksum, started_at, then finished_at and applied_steps_count = 1 on success;
//   - a row with neither finished_at nor rolled_back_at (a failed or crashed run)
//     blocks every further run (Prisma's P3009) until someone resolves it;
//   - on PostgreSQL the whole run holds pg_advisory_lock(72707369) on its connection,
//     so concurrent start-ups migrate once.
// Stricter than `prisma migrate deploy`: an applied migration whose file changed is
// refused instead of silently ignored.

import { createHash, randomUUID } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PGlite } from '@electric-sql/pglite'
import type pg from 'pg'

/** The key of Prisma Migrate's advisory lock on PostgreSQL. */
export const PRISMA_ADVISORY_LOCK_KEY = 72707369

const DEFAULT_MIGRATIONS_DIR = new URL('../../prisma/migrations', import.meta.url)

/** Prisma's own definition of the table, for PostgreSQL. */
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`

/** A database connection the runner can migrate: one session, used by one caller. */
export interface MigrationTarget {
  readonly kind: 'postgresql' | 'pglite'
  /** Runs a multi-statement script without parameters (simple query protocol). */
  exec(script: string): Promise<void>
  /** Runs one statement with positional parameters ($1, $2...) and returns its rows. */
  query<Row extends object>(sql: string, params?: unknown[]): Promise<Row[]>
  /** Runs `work` while holding the lock that serialises migration runs. */
  withLock<T>(work: () => Promise<T>): Promise<T>
}

export interface PgMigrationTargetOptions {
  /** How long to wait for another instance's migration run before giving up. Default 60 s. */
  lockTimeoutMs?: number
}

/** A target over one connected `pg.Client` (the caller connects and ends it). */
export function pgMigrationTarget(client: pg.Client, options: PgMigrationTargetOptions = {}): MigrationTarget {
  const lockTimeoutMs = options.lockTimeoutMs ?? 60_000
  return {
    kind: 'postgresql',
    async exec(script) {
      // No values: pg sends a simple Query message, which may hold many statements.
      await client.query(script)
    },
    async query<Row extends object>(sql: string, params: unknown[] = []) {
      const result = await client.query<Row>(sql, params)
      return result.rows
    },
    async withLock<T>(work: () => Promise<T>): Promise<T> {
      await client.query(`SET lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`)
      try {
        await client.query('SELECT pg_advisory_lock($1)', [PRISMA_ADVISORY_LOCK_KEY])
      } catch (error) {
        if ((error as { code?: unknown }).code === '55P03') {
          throw new MigrationError(
            'lock_timeout',
            `timed out after ${lockTimeoutMs} ms waiting for the migration lock (pg_advisory_lock(${PRISMA_ADVISORY_LOCK_KEY})): another instance is migrating this database, or a session still holds the lock`,
            { cause: error },
          )
        }
        throw error
      } finally {
        await client.query('RESET lock_timeout').catch(() => {})
      }
      let result: T
      try {
        result = await work()
      } catch (error) {
        // The lock also ends with the session; keep the error that matters.
        await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_ADVISORY_LOCK_KEY]).catch(() => {})
        throw error
      }
      await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_ADVISORY_LOCK_KEY])
      return result
    },
  }
}

/** A target over a PGlite instance: one in-process database, nothing to lock against. */
export function pgliteMigrationTarget(db: PGlite): MigrationTarget {
  return {
    kind: 'pglite',
    async exec(script) {
      await db.exec(script)
    },
    async query<Row extends object>(sql: string, params: unknown[] = []) {
      const result = await db.query<Row>(sql, params)
      return result.rows
    },
    async withLock(work) {
      return await work()
    },
  }
}

export type MigrationErrorKind =
  /** A migration row neither finished nor rolled back: Prisma's P3009. */
  | 'unfinished'
  /** The file of an applied migration no longer matches its recorded checksum. */
  | 'modified'
  /** A migration's SQL failed: Prisma's P3018. It is now recorded as unfinished. */
  | 'failed'
  /** The migrations directory is missing, unreadable or for another provider. */
  | 'invalid'
  /** Another run held the advisory lock for too long. */
  | 'lock_timeout'
  /** Tables but no migration history: not a database Prisma migrated (Prisma's P3005). */
  | 'not_empty'

export class MigrationError extends Error {
  constructor(
    readonly kind: MigrationErrorKind,
    message: string,
    options?: { cause?: unknown; migrationName?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MigrationError'
    this.migrationName = options?.migrationName
  }
  readonly migrationName: string | undefined
  /** Prisma's error code for the same situation, where it has one. */
  get prismaCode(): string | undefined {
    const codes: Partial<Record<MigrationErrorKind, string>> = { unfinished: 'P3009', failed: 'P3018', not_empty: 'P3005' }
    return codes[this.kind]
  }
}

interface LocalMigration {
  name: string
  script: string
  checksum: string
}

interface MigrationRow {
  id: string
  checksum: string
  finished_at: Date | string | null
  migration_name: string
  logs: string | null
  rolled_back_at: Date | string | null
  started_at: Date | string
  applied_steps_count: number
}

export function migrationChecksum(script: string | Uint8Array): string {
  return createHash('sha256').update(script).digest('hex')
}

async function readMigrations(dir: string): Promise<LocalMigration[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    throw new MigrationError('invalid', `cannot read the migrations directory ${dir}: ${(error as Error).message}`, { cause: error })
  }

  const lockFile = entries.find((entry) => entry.isFile() && entry.name === 'migration_lock.toml')
  if (lockFile) {
    const lock = await readFile(path.join(dir, lockFile.name), 'utf8')
    const provider = /^\s*provider\s*=\s*"([^"]*)"/m.exec(lock)?.[1]
    if (provider !== undefined && provider !== 'postgresql') {
      throw new MigrationError('invalid', `${path.join(dir, lockFile.name)} says provider = "${provider}", but these migrations run on PostgreSQL`)
    }
  }

  const migrations: LocalMigration[] = []
  for (const entry of entries) {
    if (!entry.isDirectory()) continue
    let bytes: Buffer
    try {
      bytes = await readFile(path.join(dir, entry.name, 'migration.sql'))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue // Prisma skips such folders too
      throw error
    }
    migrations.push({ name: entry.name, script: bytes.toString('utf8'), checksum: migrationChecksum(bytes) })
  }
  // Prisma orders by directory name (the timestamp prefix), byte-wise.
  migrations.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return migrations
}

/** Like Prisma, a file whose only change is its line endings (git autocrlf) still matches. */
function checksumMatches(script: string, fileChecksum: string, recorded: string): boolean {
  if (fileChecksum === recorded) return true
  if (script.includes('\r\n')) return migrationChecksum(script.replaceAll('\r\n', '\n')) === recorded
  return migrationChecksum(script.replaceAll('\n', '\r\n')) === recorded
}

function timestamp(value: Date | string | null): string {
  if (value === null) return 'unknown time'
  return (value instanceof Date ? value : new Date(value)).toISOString()
}

/**
 * Scripts that cannot run inside a transaction block (CREATE INDEX CONCURRENTLY,
 * their own BEGIN/COMMIT...) run as they are, like Prisma runs every script.
 */
function canWrapInTransaction(script: string): boolean {
  const code = script.replace(/--.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '')
  return !/\bCONCURRENTLY\b|^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION|END)\b|\b(VACUUM|ALTER\s+SYSTEM)\b|\bCREATE\s+DATABASE\b|\bDROP\s+DATABASE\b/im.test(code)
}

/**
 * Applies the migrations not yet applied, in order; returns the names applied.
 * Throws a MigrationError and applies nothing more when a migration is unfinished
 * in the database, was modified after being applied, or fails.
 */
export async function applyMigrations(target: MigrationTarget, migrationsDir: string | URL = DEFAULT_MIGRATIONS_DIR): Promise<string[]> {
  const dir = migrationsDir instanceof URL ? fileURLToPath(migrationsDir) : path.resolve(migrationsDir)
  const local = await readMigrations(dir)

  return await target.withLock(async () => {
    const [state] = await target.query<{ has_history: boolean; tables: number }>(
      `SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS has_history,
              (SELECT count(*)::int FROM information_schema.tables WHERE table_schema = current_schema()) AS tables`,
    )
    if (state && !state.has_history && state.tables > 0) {
      throw new MigrationError(
        'not_empty',
        `The database schema is not empty (P3005): it has ${state.tables} table(s) but no migration history (_prisma_migrations), ` +
          'so it was not created by these migrations. Use an empty database, or baseline this one: https://pris.ly/d/migrate-baseline',
      )
    }
    await target.exec(CREATE_MIGRATIONS_TABLE)
    const rows = await target.query<MigrationRow>(
      'SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count FROM "_prisma_migrations" ORDER BY started_at ASC',
    )

    const unfinished = rows.filter((row) => row.finished_at === null && row.rolled_back_at === null)
    if (unfinished.length > 0) {
      const lines = unfinished.map((row) => {
        const logs = row.logs ? `\n${row.logs.trim()}` : ' (no logs: the run that applied it may have been interrupted)'
        return `The \`${row.migration_name}\` migration started at ${timestamp(row.started_at)} failed${logs}`
      })
      throw new MigrationError(
        'unfinished',
        'migrate found failed migrations in the target database, new migrations will not be applied (P3009). ' +
          'Fix the database by hand, then mark the migration as rolled back (`prisma migrate resolve --rolled-back <name>`, ' +
          "or `UPDATE _prisma_migrations SET rolled_back_at = now() WHERE id = '<id>'`) " +
          'or as applied (`prisma migrate resolve --applied <name>`). See https://pris.ly/d/migrate-resolve\n\n' +
          lines.join('\n'),
        { migrationName: unfinished[0]?.migration_name },
      )
    }

    const applied = new Map<string, MigrationRow>()
    for (const row of rows) {
      if (row.finished_at !== null && row.rolled_back_at === null) applied.set(row.migration_name, row)
    }

    for (const migration of local) {
      const row = applied.get(migration.name)
      if (row && !checksumMatches(migration.script, migration.checksum, row.checksum)) {
        throw new MigrationError(
          'modified',
          `The migration \`${migration.name}\` was modified after it was applied (recorded checksum ${row.checksum}, file now ${migration.checksum}). ` +
            'Applied migrations must not change: restore the file and put the change in a new migration.',
          { migrationName: migration.name },
        )
      }
    }

    const done: string[] = []
    for (const migration of local) {
      if (applied.has(migration.name)) continue
      await applyOne(target, migration)
      done.push(migration.name)
    }
    return done
  })
}

async function applyOne(target: MigrationTarget, migration: LocalMigration): Promise<void> {
  const id = randomUUID()
  // Recorded before the script runs, so a crash leaves an unfinished row behind.
  await target.query('INSERT INTO "_prisma_migrations" (id, checksum, started_at, migration_name, applied_steps_count) VALUES ($1, $2, now(), $3, 0)', [
    id,
    migration.checksum,
    migration.name,
  ])
  const finish = 'UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = applied_steps_count + 1 WHERE id = $1'
  const transactional = canWrapInTransaction(migration.script)
  try {
    if (transactional) {
      await target.exec('BEGIN')
      try {
        await target.exec(migration.script)
        await target.query(finish, [id])
        await target.exec('COMMIT')
      } catch (error) {
        await target.exec('ROLLBACK').catch(() => {})
        throw error
      }
    } else {
      await target.exec(migration.script)
      await target.query(finish, [id])
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    const code = (error as { code?: unknown }).code
    const logs = `Migration name: ${migration.name}\n\nDatabase error code: ${typeof code === 'string' ? code : 'unknown'}\n\nDatabase error:\n${message}`
    await target.query('UPDATE "_prisma_migrations" SET logs = $1 WHERE id = $2', [logs, id]).catch(() => {})
    throw new MigrationError('failed', `Migration \`${migration.name}\` failed to apply (P3018)${transactional ? '; its changes were rolled back' : ''}:\n${message}`, {
      cause: error,
      migrationName: migration.name,
    })
  }
}
