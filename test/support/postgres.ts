// Real PostgreSQL databases for tests.
//
// The test runner (scripts/test.mjs) starts one cluster for the whole run and passes
// its URL in TEST_POSTGRES_URL; each test takes a fresh, uniquely named database in
// it. A test file run on its own (`npx tap test/x.test.ts`) starts its own cluster
// once per process instead. Tests that stop and start the server (outages) use a
// private cluster from startPostgresCluster.

import { randomBytes } from 'node:crypto'
import pg from 'pg'

export interface PostgresCluster {
  /** postgresql://postgres@127.0.0.1:PORT/postgres (trust auth, superuser). */
  url: string
  port: number
  /** Fast shutdown; connected clients are disconnected. */
  stop(): Promise<void>
  /** Starts the server again on the same port and data dir (after stop()). */
  start(): Promise<void>
}

export interface TestDatabase {
  /** URL of the new database, same server and credentials as the cluster. */
  url: string
  /** Drops the database, disconnecting whoever is still connected. */
  drop(): Promise<void>
}

interface ClusterModule {
  startPostgresCluster(): Promise<PostgresCluster>
}

// scripts/ is plain JavaScript without type declarations: load it untyped, type it here.
const clusterModuleUrl = new URL('../../scripts/postgres-cluster.mjs', import.meta.url).href

/** A private cluster on a free loopback port; it dies with this process. */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const module = (await import(clusterModuleUrl)) as ClusterModule
  return await module.startPostgresCluster()
}

let ownCluster: Promise<PostgresCluster> | undefined

async function clusterUrl(): Promise<string> {
  const fromRunner = process.env.TEST_POSTGRES_URL
  if (fromRunner) return fromRunner
  ownCluster ??= startPostgresCluster()
  return (await ownCluster).url
}

async function withAdmin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/** Creates a fresh, empty database with a unique name. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = await clusterUrl()
  const name = `test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  let dropped = false
  return {
    url: url.toString(),
    async drop() {
      if (dropped) return
      dropped = true
      await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
    },
  }
}
