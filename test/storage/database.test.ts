// The gateway's database as its operators and users see it: it migrates itself on
// start-up (PostgreSQL or the embedded PGlite), refuses to start on a database it
// cannot trust, stores accounts the way the Prisma client expects, and during a
// PostgreSQL outage fails fast and recovers by itself.

import { createHash } from 'node:crypto'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import { setTimeout } from 'node:timers/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t, { type Test } from 'tap'
import { PrismaPg } from '@prisma/adapter-pg'
import { Prisma, PrismaClient } from '../../src/generated/prisma/client.js'
import { isDatabaseUnavailable, openDatabase, POSTGRES_POOL_SETTINGS, type Database } from '../../src/storage/database.js'
import { applyMigrations, MigrationError, pgMigrationTarget } from '../../src/storage/migrations.js'
import { createTestDatabase, startPostgresCluster } from '../support/postgres.js'
import { startTcpProxy, throughProxy } from '../support/tcp-proxy.js'

const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations/', import.meta.url))
const KAKAO_SUBJECT = '1376016924429759228' // above 2^53: must never pass through a JS number
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The migrations in the repository, as Prisma would record them. */
const migrations = await (async () => {
  const found: { name: string; checksum: string }[] = []
  for (const entry of await readdir(MIGRATIONS_DIR, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const bytes = await readFile(path.join(MIGRATIONS_DIR, entry.name, 'migration.sql'))
    found.push({ name: entry.name, checksum: createHash('sha256').update(bytes).digest('hex') })
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : 1))
})()

interface MigrationRow {
  id: string
  checksum: string
  finished_at: Date | null
  migration_name: string
  logs: string | null
  rolled_back_at: Date | null
  started_at: Date
  applied_steps_count: number
}

async function migrationRows(db: Database): Promise<MigrationRow[]> {
  return await db.prisma.$queryRawUnsafe<MigrationRow[]>('SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name')
}

async function tempDir(t: Test, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function withPg<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(url)
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

function checkMigrationRows(t: Test, rows: MigrationRow[]) {
  t.same(
    rows.map((row) => row.migration_name),
    migrations.map((m) => m.name),
    'every migration of the repository is recorded, once, in order',
  )
  for (const [i, row] of rows.entries()) {
    t.equal(row.checksum, migrations[i]!.checksum, `${row.migration_name}: checksum is the sha256 of migration.sql`)
    t.match(row.id, UUID, 'id is a random uuid, like Prisma writes')
    t.ok(row.finished_at instanceof Date, 'finished_at is set')
    t.ok(row.finished_at! >= row.started_at, 'finished after it started')
    t.equal(row.applied_steps_count, 1, 'applied_steps_count is 1')
    t.equal(row.rolled_back_at, null, 'not rolled back')
    t.equal(row.logs, null, 'no logs')
  }
}

/** What the rest of the gateway relies on, checked against one open database. */
async function checkSchemaAgreesWithClient(t: Test, db: Database) {
  const { prisma } = db

  const user = await prisma.user.create({
    data: { publicId: 'pub-1', nickname: 'Minji', identities: { create: { provider: 'kakao', subject: KAKAO_SUBJECT } } },
    include: { identities: true },
  })
  t.equal(typeof user.id, 'bigint', 'ids are BigInt')
  t.equal(user.email, null, 'email is optional')
  t.equal(user.photo, null, 'photo is optional')
  t.ok(user.createdAt instanceof Date && user.updatedAt instanceof Date, 'timestamps are filled in by the database')
  t.equal(user.identities.length, 1, 'the identity was created with the user')

  const found = await prisma.identity.findUnique({
    where: { provider_subject: { provider: 'kakao', subject: KAKAO_SUBJECT } },
    include: { user: true },
  })
  t.equal(found?.subject, KAKAO_SUBJECT, 'a Kakao-sized subject round-trips exactly')
  t.equal(found?.user.publicId, 'pub-1', 'the identity leads back to its user')

  const duplicate = await rejection(
    prisma.user.create({
      data: { publicId: 'pub-2', nickname: 'Other', identities: { create: { provider: 'kakao', subject: KAKAO_SUBJECT } } },
    }),
  )
  t.ok(duplicate instanceof Prisma.PrismaClientKnownRequestError, 'linking a taken identity fails with a Prisma error')
  t.equal((duplicate as Prisma.PrismaClientKnownRequestError).code, 'P2002', 'as a unique violation (P2002)')
  t.equal(isDatabaseUnavailable(duplicate), false, 'which is not an outage')
  t.equal(await prisma.user.count({ where: { publicId: 'pub-2' } }), 0, 'and leaves no half-written user behind')

  const sameSubjectOtherProvider = await prisma.identity.create({ data: { provider: 'google', subject: KAKAO_SUBJECT, userId: user.id } })
  t.equal(sameSubjectOtherProvider.subject, KAKAO_SUBJECT, 'the same subject at another provider is a different identity')

  const indexes = await prisma.$queryRawUnsafe<{ indexname: string; indexdef: string }[]>(
    `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('users', 'identities') ORDER BY indexname`,
  )
  t.same(
    indexes.map((i) => i.indexname),
    ['identities_pkey', 'identities_provider_subject_key', 'identities_public_id_key', 'identities_user_id_provider_key', 'users_pkey', 'users_public_id_key'],
    'indexes are named as Prisma names them',
  )
  const foreignKeys = await prisma.$queryRawUnsafe<{ conname: string; def: string }[]>(
    `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE contype = 'f' AND conrelid = 'identities'::regclass`,
  )
  t.same(
    foreignKeys,
    [{ conname: 'identities_user_id_fkey', def: 'FOREIGN KEY (user_id) REFERENCES users(id) ON UPDATE CASCADE ON DELETE CASCADE' }],
    'identities reference users with cascading deletes',
  )

  await prisma.user.delete({ where: { id: user.id } })
  t.equal(await prisma.identity.count({ where: { userId: user.id } }), 0, 'deleting a user removes its identities')
}

t.test('PostgreSQL', async (t) => {
  t.test('a fresh database is migrated on open; opening again applies nothing and keeps the data', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())

    const first = await openDatabase({ databaseUrl: database.url, dataDir: 'unused' })
    t.equal(first.kind, 'postgresql')
    await first.ping()
    const rows = await migrationRows(first)
    checkMigrationRows(t, rows)
    await first.prisma.user.create({ data: { publicId: 'kept', nickname: 'Kept' } })
    await first.close()

    const second = await openDatabase({ databaseUrl: database.url, dataDir: 'unused' })
    t.teardown(() => second.close())
    t.same(await migrationRows(second), rows, 'the migration table is unchanged')
    t.equal((await second.prisma.user.findUnique({ where: { publicId: 'kept' } }))?.nickname, 'Kept', 'the data is still there')
    t.same(await withPg(database.url, (client) => applyMigrations(pgMigrationTarget(client))), [], 'the runner finds nothing to apply')
  })

  t.test('the schema agrees with the Prisma client', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    const db = await openDatabase({ databaseUrl: database.url, dataDir: 'unused' })
    t.teardown(() => db.close())
    await checkSchemaAgreesWithClient(t, db)
  })

  t.test('a migration left unfinished by a crashed run blocks start-up with a clear error', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    const crashed = migrations[0]!
    await withPg(database.url, async (client) => {
      // What a run killed in the middle of the script leaves behind.
      await client.query(`CREATE TABLE "_prisma_migrations" (
        "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
        "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
        "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`)
      await client.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES (gen_random_uuid(), $1, $2)`, [
        crashed.checksum,
        crashed.name,
      ])
    })

    const error = await rejection(openDatabase({ databaseUrl: database.url, dataDir: 'unused' }))
    t.type(error, MigrationError)
    t.equal((error as MigrationError).kind, 'unfinished')
    t.equal((error as MigrationError).prismaCode, 'P3009')
    t.match((error as Error).message, crashed.name, 'the error names the migration')
    t.match((error as Error).message, /failed migrations/, 'says what is wrong')
    t.match((error as Error).message, /migrate resolve/, 'and how to resolve it')
    const tables = await withPg(database.url, (client) => client.query(`SELECT to_regclass('users') AS users`))
    t.equal(tables.rows[0].users, null, 'and nothing was applied')
  })

  t.test('an applied migration whose file changed is refused', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    await (await openDatabase({ databaseUrl: database.url, dataDir: 'unused' })).close()

    // The repository's migration edited after it was applied somewhere.
    const dir = await tempDir(t, 'gateway-migrations-')
    await cp(MIGRATIONS_DIR, dir, { recursive: true })
    const edited = path.join(dir, migrations[0]!.name, 'migration.sql')
    await writeFile(edited, (await readFile(edited, 'utf8')) + '\n-- edited\n')
    const error = await rejection(withPg(database.url, (client) => applyMigrations(pgMigrationTarget(client), dir)))
    t.type(error, MigrationError)
    t.equal((error as MigrationError).kind, 'modified')
    t.match((error as Error).message, `${migrations[0]!.name}\` was modified after it was applied`)

    // The same seen from openDatabase: the recorded checksum no longer matches the file.
    await withPg(database.url, (client) => client.query(`UPDATE "_prisma_migrations" SET checksum = repeat('0', 64)`))
    const refused = await rejection(openDatabase({ databaseUrl: database.url, dataDir: 'unused' }))
    t.type(refused, MigrationError)
    t.equal((refused as MigrationError).kind, 'modified')
  })

  t.test('a new migration is applied once on the next start; a failing one is rolled back and blocks the start after', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    await (await openDatabase({ databaseUrl: database.url, dataDir: 'unused' })).close()

    const dir = await tempDir(t, 'gateway-migrations-')
    await cp(MIGRATIONS_DIR, dir, { recursive: true })
    await mkdir(path.join(dir, '29990101000000_add_locale'))
    await writeFile(path.join(dir, '29990101000000_add_locale', 'migration.sql'), '-- AlterTable\nALTER TABLE "users" ADD COLUMN "locale" TEXT;\n')
    const migrate = () => withPg(database.url, (client) => applyMigrations(pgMigrationTarget(client), dir))
    t.same(await migrate(), ['29990101000000_add_locale'], 'only the new migration is applied')
    t.same(await migrate(), [], 'and only once')

    await mkdir(path.join(dir, '29990102000000_broken'))
    await writeFile(path.join(dir, '29990102000000_broken', 'migration.sql'), 'CREATE TABLE "half" ("id" INTEGER);\nSELECT 1 / 0;\n')
    const failed = await rejection(migrate())
    t.type(failed, MigrationError)
    t.equal((failed as MigrationError).kind, 'failed')
    t.match((failed as Error).message, /division by zero/, 'the database error is reported')
    await withPg(database.url, async (client) => {
      const half = await client.query(`SELECT to_regclass('half') AS half`)
      t.equal(half.rows[0].half, null, 'the failed migration was rolled back as a whole')
      const row = await client.query(`SELECT finished_at, logs FROM "_prisma_migrations" WHERE migration_name = '29990102000000_broken'`)
      t.equal(row.rows[0].finished_at, null, 'and recorded as unfinished, as Prisma records it')
      t.match(row.rows[0].logs, /division by zero/, 'with the error in its logs')
    })
    const blocked = await rejection(migrate())
    t.equal((blocked as MigrationError).kind, 'unfinished', 'the next start stops until someone resolves it')
  })

  t.test('a database that already holds other tables is left alone', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    await withPg(database.url, (client) => client.query('CREATE TABLE "someone_elses" ("id" INTEGER)'))

    const error = await rejection(openDatabase({ databaseUrl: database.url, dataDir: 'unused' }))
    t.type(error, MigrationError)
    t.equal((error as MigrationError).kind, 'not_empty')
    t.equal((error as MigrationError).prismaCode, 'P3005')
    const tables = await withPg(database.url, (client) => client.query(`SELECT to_regclass('"_prisma_migrations"') AS history, to_regclass('users') AS users`))
    t.same(tables.rows[0], { history: null, users: null }, 'nothing was written into it')
  })

  t.test('a start-up stuck behind another instance\'s migration run gives up with a clear error', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    const holder = new pg.Client(database.url)
    await holder.connect()
    t.teardown(() => holder.end())
    await holder.query('SELECT pg_advisory_lock(72707369)') // Prisma Migrate's lock, held elsewhere

    const error = await rejection(withPg(database.url, (client) => applyMigrations(pgMigrationTarget(client, { lockTimeoutMs: 300 }))))
    t.type(error, MigrationError)
    t.equal((error as MigrationError).kind, 'lock_timeout')
    t.match((error as Error).message, /another instance is migrating/)

    await holder.query('SELECT pg_advisory_unlock(72707369)')
    t.same(await withPg(database.url, (client) => applyMigrations(pgMigrationTarget(client))), migrations.map((m) => m.name), 'once the lock is free, it migrates')
  })

  t.test('20 instances starting at once on one database migrate it once', async (t) => {
    const database = await createTestDatabase()
    t.teardown(() => database.drop())
    const started = Date.now()
    const dbs = await Promise.all(Array.from({ length: 20 }, () => openDatabase({ databaseUrl: database.url, dataDir: 'unused' })))
    t.comment(`20 concurrent opens took ${Date.now() - started} ms`)
    try {
      checkMigrationRows(t, await migrationRows(dbs[0]!))
      await Promise.all(dbs.map((db) => db.ping()))
      t.pass('every instance can query')
    } finally {
      await Promise.all(dbs.map((db) => db.close()))
    }
  })
})

t.test('PostgreSQL outage', async (t) => {
  const cluster = await startPostgresCluster()
  t.teardown(() => cluster.stop())

  t.test('the server stopped under a live client: queries fail fast as "unavailable", then recover without reopening', async (t) => {
    const db = await openDatabase({ databaseUrl: cluster.url, dataDir: 'unused' })
    t.teardown(() => db.close())
    await db.prisma.user.create({ data: { publicId: 'before', nickname: 'Before' } })
    // Several pooled connections, all of which the outage will break.
    await Promise.all(Array.from({ length: 5 }, () => db.prisma.user.findMany()))

    await cluster.stop()
    let started = Date.now()
    const queryError = await rejection(db.prisma.user.findUnique({ where: { publicId: 'before' } }))
    const queryMs = Date.now() - started
    t.comment(`query failed after ${queryMs} ms: ${(queryError as { code?: string }).code} ${(queryError as Error).message.split('\n').pop()}`)
    t.ok(queryMs < 3000, 'the query fails within a few seconds')
    t.equal(isDatabaseUnavailable(queryError), true, 'as "database unavailable"')
    t.equal((queryError as Prisma.PrismaClientKnownRequestError).code, 'P1001', "(Prisma's P1001: can't reach database server)")

    const pingError = await rejection(db.ping())
    t.equal(isDatabaseUnavailable(pingError), true, 'ping rejects as unavailable too')
    const writeError = await rejection(db.prisma.user.create({ data: { publicId: 'during', nickname: 'During', identities: { create: { provider: 'naver', subject: 'x' } } } }))
    t.equal(isDatabaseUnavailable(writeError), true, 'and so does a write in a transaction')

    started = Date.now()
    await cluster.start()
    t.comment(`server restarted in ${Date.now() - started} ms`)
    t.equal((await db.prisma.user.findUnique({ where: { publicId: 'before' } }))?.nickname, 'Before', 'the first query after the restart succeeds')
    await db.ping()
    t.equal(await db.prisma.user.count({ where: { publicId: 'during' } }), 0, 'nothing half-written from the outage')
  })

  t.test('a server that stops answering: queries time out within seconds as "unavailable", then recover', async (t) => {
    const proxy = await startTcpProxy(cluster.port)
    t.teardown(() => proxy.close())
    const db = await openDatabase({ databaseUrl: throughProxy(cluster.url, proxy), dataDir: 'unused' })
    t.teardown(() => db.close())
    await db.ping()

    proxy.freeze()
    let started = Date.now()
    const queryError = await rejection(db.prisma.user.findMany())
    const queryMs = Date.now() - started
    t.comment(`hung query failed after ${queryMs} ms: ${(queryError as Error).message.split('\n').pop()}`)
    t.ok(queryMs < POSTGRES_POOL_SETTINGS.query_timeout + 1500, 'a query on a live connection times out')
    t.equal(isDatabaseUnavailable(queryError), true, 'as "database unavailable"')

    started = Date.now()
    const connectError = await rejection(db.ping())
    const connectMs = Date.now() - started
    t.comment(`new connection failed after ${connectMs} ms: ${(connectError as Error).message.split('\n').pop()}`)
    t.ok(connectMs < POSTGRES_POOL_SETTINGS.connectionTimeoutMillis + 1500, 'a new connection times out sooner')
    t.equal(isDatabaseUnavailable(connectError), true, 'also as "database unavailable"')

    started = Date.now()
    const transactionError = await rejection(db.prisma.$transaction(async (tx) => await tx.user.count()))
    const transactionMs = Date.now() - started
    t.comment(`transaction failed after ${transactionMs} ms: ${(transactionError as Error).message.split('\n').pop()}`)
    t.ok(transactionMs < 3500, 'a transaction gives up waiting for a connection within seconds')
    t.equal(isDatabaseUnavailable(transactionError), true, 'also as "database unavailable"')

    proxy.thaw()
    await db.ping()
    t.ok(Array.isArray(await db.prisma.user.findMany()), 'queries succeed again once the server answers')
  })

  t.test('a backend terminated right after answering, while others wait for a connection: the process stays up', async (t) => {
    // pg-pool hands a released connection to the next waiter while the socket's data is
    // still being parsed; a FATAL in the same TCP chunk as the answer before it used to be
    // emitted on a connection with no error listener, which ends the process.
    const proxy = await startTcpProxy(cluster.port)
    t.teardown(() => proxy.close())
    const db = await openDatabase({ databaseUrl: throughProxy(cluster.url, proxy), dataDir: 'unused' })
    t.teardown(() => db.close())
    await db.ping()

    const outcome = (work: Promise<unknown>) =>
      work.then(
        () => 'answered',
        (error: unknown) => (isDatabaseUnavailable(error) ? 'unavailable' : `other: ${(error as Error).message}`),
      )
    // Every pooled connection runs a query, and as many transactions wait for one.
    const running = Array.from({ length: POSTGRES_POOL_SETTINGS.max }, () => outcome(db.prisma.$executeRawUnsafe('SELECT pg_sleep(0.3)')))
    const waiting = Array.from({ length: POSTGRES_POOL_SETTINGS.max }, () =>
      outcome(db.prisma.$transaction(async (tx) => await tx.$executeRawUnsafe('SELECT 1'))),
    )
    const queries = [...running, ...waiting]
    await setTimeout(100)
    proxy.hold() // the running queries' answers stay in the proxy ...
    await setTimeout(600)
    const terminated = await withPg(cluster.url, async (admin) => {
      const { rows } = await admin.query(
        "SELECT (count(*) FILTER (WHERE pg_terminate_backend(pid)))::int AS n FROM pg_stat_activity WHERE application_name = 'gateway'",
      )
      return rows[0].n as number
    })
    await setTimeout(200)
    proxy.release() // ... and arrive together with the FATAL that ended each backend
    const outcomes = await Promise.all(queries)

    t.equal(terminated, POSTGRES_POOL_SETTINGS.max, 'every pooled backend was terminated after answering')
    t.same(
      outcomes.filter((outcome) => outcome !== 'answered' && outcome !== 'unavailable'),
      [],
      'each query either answered or failed as "database unavailable"',
    )
    t.ok(outcomes.includes('unavailable'), 'some transactions were handed a connection that had just been terminated')
    t.equal(await db.prisma.$executeRawUnsafe('SELECT 1'), 1, 'the next query succeeds on a fresh connection')
  })

  t.test('opening a database that is down fails as "unavailable"', async (t) => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo
        server.close(() => resolve(port))
      })
    })
    const error = await rejection(openDatabase({ databaseUrl: `postgresql://postgres@127.0.0.1:${closedPort}/postgres`, dataDir: 'unused' }))
    t.equal(isDatabaseUnavailable(error), true)
  })
})

t.test('PGlite in memory: migrated on open, schema agrees with the client', async (t) => {
  const db = await openDatabase({ dataDir: 'memory://' })
  t.teardown(() => db.close())
  t.equal(db.kind, 'pglite')
  await db.ping()
  checkMigrationRows(t, await migrationRows(db))
  await checkSchemaAgreesWithClient(t, db)
})

t.test('PGlite on disk: data survives a restart, migrations run once, an unfinished one blocks start-up', async (t) => {
  const dataDir = await tempDir(t, 'gateway-data-')

  const first = await openDatabase({ dataDir })
  t.ok((await stat(path.join(dataDir, 'pglite'))).isDirectory(), 'the database lives under <dataDir>/pglite')
  const rows = await migrationRows(first)
  checkMigrationRows(t, rows)
  await first.prisma.user.create({
    data: { publicId: 'kept', nickname: 'Kept', identities: { create: { provider: 'kakao', subject: KAKAO_SUBJECT } } },
  })
  await first.close()

  const second = await openDatabase({ dataDir })
  t.same(await migrationRows(second), rows, 'reopening applies nothing')
  const kept = await second.prisma.user.findUnique({ where: { publicId: 'kept' }, include: { identities: true } })
  t.equal(kept?.identities[0]?.subject, KAKAO_SUBJECT, 'and the data is still there')
  // As if the run that applied it had crashed half-way.
  await second.prisma.$executeRawUnsafe(`UPDATE "_prisma_migrations" SET finished_at = NULL, applied_steps_count = 0`)
  await second.close()

  const error = await rejection(openDatabase({ dataDir }))
  t.type(error, MigrationError)
  t.equal((error as MigrationError).kind, 'unfinished', 'start-up stops on an unfinished migration')
})

t.test('isDatabaseUnavailable: ordinary errors are not outages', async (t) => {
  t.equal(isDatabaseUnavailable(new Error('boom')), false)
  t.equal(isDatabaseUnavailable(undefined), false)
  t.equal(isDatabaseUnavailable('ECONNREFUSED'), false)
  t.equal(
    isDatabaseUnavailable(new Prisma.PrismaClientKnownRequestError('Record not found', { code: 'P2025', clientVersion: Prisma.prismaVersion.client })),
    false,
  )
  t.equal(
    isDatabaseUnavailable(new Prisma.PrismaClientKnownRequestError("Can't reach database server", { code: 'P1001', clientVersion: Prisma.prismaVersion.client })),
    true,
  )
  t.equal(isDatabaseUnavailable(new Prisma.PrismaClientInitializationError('cannot connect', Prisma.prismaVersion.client)), true)
  // A client over a port where nothing listens: the shape comes from the real driver.
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgresql://postgres@127.0.0.1:1/none', ...POSTGRES_POOL_SETTINGS }) })
  t.teardown(() => prisma.$disconnect())
  t.equal(isDatabaseUnavailable(await rejection(prisma.user.count())), true)
})
