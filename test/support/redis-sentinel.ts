// A Sentinel group for tests: a master, its replica (or two) and three Sentinels (quorum 2), on
// loopback, each a guarded redis-server (support/redis.ts) that dies with the test process.
// A master is down after 1 s without answering, so a failover takes a few seconds.

import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { startRedis, type TestRedis } from './redis.js'
import type { HostPort } from '../../src/storage/redis.js'
import { tlsEnv, type TestCertificates } from './tls-certificates.js'

export const SENTINEL_MASTER_NAME = 'gateway'
const SETTLE_TIMEOUT_MS = 20_000

export interface TestSentinelGroup {
  /** The master and its replica(s) as started; which one is master now: currentMaster(). */
  servers: TestRedis[]
  sentinels: TestRedis[]
  /** The Sentinels' addresses (REDIS_SENTINELS), for a client of the tests' own. */
  sentinelAddresses: HostPort[]
  /** The gateway's settings for this group: REDIS_SENTINELS and REDIS_SENTINEL_NAME. */
  env: Record<string, string>
  /**
   * The server every Sentinel names as master right now; while they disagree (a failover not yet
   * known to all), the one they all named before. A test that restarts a crashed master waits
   * for that: a Sentinel still on the old configuration would see the old master back and make
   * the promoted replica replicate from it, replacing its data with the old master's.
   */
  currentMaster(): Promise<TestRedis>
  stop(): Promise<void>
}

/**
 * `password`: the master and the replica require it (requirepass; masterauth for the replica,
 * auth-pass for the Sentinels). `sentinelPassword`: the Sentinels require it of their clients
 * (and of each other). `tls`: every server and Sentinel speaks TLS only, to clients and to each
 * other; `clientCertificates`: and asks every client for a certificate. `hostname`: the
 * Sentinels watch the master by this name and name it so to clients (resolve-hostnames,
 * announce-hostnames), and are given by it themselves. `replicas`: how many the master has (1).
 */
export async function startSentinelGroup(
  {
    password,
    sentinelPassword,
    tls,
    clientCertificates,
    hostname,
    replicas: replicaCount = 1,
  }: { password?: string; sentinelPassword?: string; tls?: TestCertificates; clientCertificates?: boolean; hostname?: string; replicas?: number } = {},
): Promise<TestSentinelGroup> {
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password]
  const replication = tls ? ['--tls-replication', 'yes'] : []
  // As docs/operations.md asks of a Sentinel group: a crashed server comes back with its data.
  // Empty, it could be promoted by a later failover, and every other server would copy its emptiness.
  const persistence = ['--appendonly', 'yes']
  const master = await startRedis({ args: [...auth, ...replication, ...persistence], tls, clientCertificates })
  const replicas = await Promise.all(
    Array.from({ length: replicaCount }, () => startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port), ...auth, ...replication, ...persistence], tls, clientCertificates })),
  )
  const config = [
    ...(hostname ? ['sentinel resolve-hostnames yes', 'sentinel announce-hostnames yes'] : []),
    `sentinel monitor ${SENTINEL_MASTER_NAME} ${hostname ?? '127.0.0.1'} ${master.port} 2`,
    `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
    `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
    `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
    ...(password === undefined ? [] : [`sentinel auth-pass ${SENTINEL_MASTER_NAME} ${password}`]),
    ...(sentinelPassword === undefined ? [] : [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]),
    '',
  ].join('\n')
  const sentinels = await Promise.all(Array.from({ length: 3 }, () => startRedis({ config, args: ['--sentinel', ...replication], tls, clientCertificates })))
  const servers = [master, ...replicas]
  const stop = () => Promise.all([...sentinels, ...servers].map((server) => server.stop())).then(() => undefined)
  try {
    await settled(replicas, sentinels, { server: password, sentinel: sentinelPassword }, tls)
  } catch (error) {
    await stop()
    throw error
  }
  const sentinelAddresses = sentinels.map((sentinel) => ({ host: hostname ?? '127.0.0.1', port: sentinel.port }))
  let agreedMaster = master
  return {
    servers,
    sentinels,
    sentinelAddresses,
    env: {
      REDIS_SENTINELS: sentinelAddresses.map(({ host, port }) => `${host}:${port}`).join(','),
      REDIS_SENTINEL_NAME: SENTINEL_MASTER_NAME,
      ...(password === undefined ? {} : { REDIS_PASSWORD: password }),
      ...(sentinelPassword === undefined ? {} : { REDIS_SENTINEL_PASSWORD: sentinelPassword }),
      ...(tls ? tlsEnv(tls, clientCertificates) : {}),
    },
    async currentMaster() {
      const named = await Promise.all(
        sentinels.map(async (sentinel) => {
          const [, port] = (await ask(sentinel.port, { password: sentinelPassword, tls }, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as [string, string]
          const server = servers.find((candidate) => candidate.port === Number(port))
          if (!server) throw new Error(`a Sentinel names 127.0.0.1:${port}, which is not a server of this group`)
          return server
        }),
      )
      if (named.every((server) => server === named[0])) agreedMaster = named[0]!
      return agreedMaster
    },
    stop,
  }
}

/** The replicas have synced, and every Sentinel knows them and the two other Sentinels. */
async function settled(replicas: TestRedis[], sentinels: TestRedis[], passwords: { server?: string; sentinel?: string }, tls: TestCertificates | undefined): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS
  let last = ''
  while (Date.now() < deadline) {
    const problems: string[] = []
    for (const replica of replicas) {
      if (!/master_link_status:up/.test((await ask(replica.port, { password: passwords.server, tls }, 'INFO', 'replication')) as string)) problems.push(`the replica on ${replica.port} has not synced`)
    }
    for (const sentinel of sentinels) {
      const fields = (await ask(sentinel.port, { password: passwords.sentinel, tls }, 'SENTINEL', 'MASTER', SENTINEL_MASTER_NAME)) as string[]
      const field = (name: string) => fields[fields.indexOf(name) + 1]
      if (field('num-slaves') !== String(replicas.length) || field('num-other-sentinels') !== '2') {
        problems.push(`Sentinel ${sentinel.port} knows ${field('num-slaves')} replica(s) and ${field('num-other-sentinels')} other Sentinel(s)`)
      }
    }
    last = problems.join('; ')
    if (last === '') return
    await sleep(100)
  }
  throw new Error(`the Sentinel group did not settle within ${SETTLE_TIMEOUT_MS / 1000} s: ${last}`)
}

async function ask(port: number, { password, tls }: { password?: string; tls?: TestCertificates }, ...command: string[]): Promise<unknown> {
  const redis = new Redis({ host: '127.0.0.1', port, password, ...(tls && { tls: tls.clientTls }), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 2000, protocol: 2 })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.call(command[0]!, ...command.slice(1))
  } finally {
    redis.disconnect()
  }
}

const SWITCH_TIMEOUT_MS = 30_000

/**
 * Switches the group's master by SENTINEL FAILOVER (no password or TLS); resolves once the old
 * master has synced as a replica of the new one, and says how long each took.
 */
export async function switchMaster(group: TestSentinelGroup): Promise<string> {
  const old = await group.currentMaster()
  const started = Date.now()
  const deadline = started + SWITCH_TIMEOUT_MS
  await ask(group.sentinels[0]!.port, {}, 'SENTINEL', 'FAILOVER', SENTINEL_MASTER_NAME)
  while ((await group.currentMaster()) === old) {
    if (Date.now() > deadline) throw new Error('the Sentinels did not switch the master')
    await sleep(20)
  }
  const switched = Date.now()
  // The Sentinels reconfigure the old master only when they next read its INFO (every 10 s).
  // Becoming a replica, it closes its clients' connections: a question cut off that way means "not yet".
  const syncedAsReplica = async () => /master_link_status:up/.test(String(await ask(old.port, {}, 'INFO', 'replication').catch(() => '')))
  while (!(await syncedAsReplica())) {
    if (Date.now() > deadline) throw new Error('the old master did not sync as a replica')
    await sleep(50)
  }
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  return `switched the master in ${seconds(switched - started)}, the old one synced as its replica ${seconds(Date.now() - switched)} later;`
}
