// A Redis Cluster for tests: three masters with one replica each, on loopback (and another
// master with its replica, when a test adds one to take slots). Every node is
// a guarded redis-server (support/redis.ts), so none outlives the test process. A node is
// declared failed after 1 s without answering, and a replica may always take over (validity
// factor 0), so a master's failover takes a few seconds.

import { execFile } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { startRedis, type TestRedis } from './redis.js'
import type { HostPort } from '../../src/storage/redis.js'
import { tlsEnv, type TestCertificates } from './tls-certificates.js'

const NODE_TIMEOUT_MS = 1000
const SETTLE_TIMEOUT_MS = 20_000

export interface TestRedisCluster {
  nodes: TestRedis[]
  /** The gateway's settings for this cluster: REDIS_CLUSTER_NODES (and its password and TLS). */
  env: Record<string, string>
  /** The seed nodes of REDIS_CLUSTER_NODES, for a client of the tests' own. */
  seeds: HostPort[]
  /** The nodes that serve slots as masters right now. */
  masters(): Promise<TestRedis[]>
  /** The node that serves `key` as master right now (a crashed one until a replica takes over). */
  masterOf(key: string): Promise<TestRedis>
  /** The nodes that replicate `master` right now. */
  replicasOf(master: TestRedis): Promise<TestRedis[]>
  /** An admin connection to one live node (for CLUSTER commands); disconnect it after use. */
  anyNode(): Promise<Redis>
  /** An admin connection to this node itself (CONFIG, INFO); disconnect it after use. */
  connectTo(node: TestRedis): Promise<Redis>
  /** The node's cluster id (what `redis-cli --cluster` takes for a node). */
  idOf(node: TestRedis): Promise<string>
  /**
   * A new master with a replica of its own joins the cluster, serving no slot yet (as
   * `redis-cli --cluster add-node` leaves it): resolves once every node knows both.
   */
  addMaster(): Promise<TestRedis>
  /** Runs `redis-cli --cluster <command> <a node> ...args` with the cluster's password and TLS. */
  redisCli(command: string, ...args: string[]): Promise<void>
  stop(): Promise<void>
}

/**
 * `password`: every node requires it (requirepass), replicas included (masterauth). `tls`:
 * every node speaks TLS only, to clients and to each other; `clientCertificates`: and asks
 * every client for a certificate. `hostname`: the nodes announce themselves to clients by this
 * name (cluster-preferred-endpoint-type hostname), and the seeds are given by it.
 */
export async function startRedisCluster(
  { password, tls, clientCertificates, hostname }: { password?: string; tls?: TestCertificates; clientCertificates?: boolean; hostname?: string } = {},
): Promise<TestRedisCluster> {
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password]
  const startNode = () =>
    startRedis({
      args: [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
        '--cluster-replica-validity-factor', '0',
        ...auth,
        ...(tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
        ...(hostname ? ['--cluster-announce-hostname', hostname, '--cluster-preferred-endpoint-type', 'hostname'] : []),
      ],
      tls,
      clientCertificates,
    })
  const nodes = await Promise.all(Array.from({ length: 6 }, startNode))
  const stop = () => Promise.all(nodes.map((node) => node.stop())).then(() => undefined)
  const adminConnection = (port: number) => connectionTo(port, password, tls)
  const redisCli = async (command: string, ...args: string[]) => {
    await promisify(execFile)(
      'redis-cli',
      ['--cluster', command, ...args, ...(tls ? ['--tls', '--cacert', tls.caFile, '--cert', tls.clientCertFile, '--key', tls.clientKeyFile] : [])],
      // redis-cli reads the password from here without warning about it.
      { env: { ...process.env, ...(password === undefined ? {} : { REDISCLI_AUTH: password }) }, maxBuffer: 64 * 1024 * 1024 },
    )
  }
  try {
    await redisCli('create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes')
    await settled(nodes, adminConnection)
  } catch (error) {
    await stop()
    throw error
  }

  const byPort = (port: number) => {
    const node = nodes.find((candidate) => candidate.port === port)
    if (!node) throw new Error(`no test node listens on ${port}`)
    return node
  }
  const anyNode = async () => {
    for (const node of nodes) {
      const redis = adminConnection(node.port)
      try {
        await redis.connect()
        return redis
      } catch {
        redis.disconnect()
      }
    }
    throw new Error('no node of the cluster answers')
  }
  // CLUSTER NODES, not CLUSTER SLOTS: the latter leaves out replicas that have not yet
  // replicated a byte (a fresh cluster's).
  const topology = async () => {
    const redis = await anyNode()
    try {
      const lines = ((await redis.call('CLUSTER', 'NODES')) as string).trim().split('\n')
      return lines
        .map((line) => line.split(' '))
        .map(([id, address, flags, masterId, , , , , ...slots]) => ({
          id: id!,
          node: byPort(Number(/:(\d+)@/.exec(address!)![1])),
          master: flags!.split(',').includes('master'),
          masterId: masterId!,
          slots: slots.map((range) => range.split('-').map(Number)),
        }))
    } finally {
      redis.disconnect()
    }
  }
  const idOf = async (node: TestRedis) => {
    const entry = (await topology()).find((candidate) => candidate.node === node)
    if (!entry) throw new Error(`no node of the cluster listens on ${node.port}`)
    return entry.id
  }
  const slotOf = async (key: string) => {
    const redis = await anyNode()
    try {
      return Number(await redis.call('CLUSTER', 'KEYSLOT', key))
    } finally {
      redis.disconnect()
    }
  }
  const seeds = nodes.slice(0, 3).map((node) => ({ host: hostname ?? '127.0.0.1', port: node.port }))
  return {
    nodes,
    seeds,
    env: {
      REDIS_CLUSTER_NODES: seeds.map(({ host, port }) => `${host}:${port}`).join(','),
      ...(password === undefined ? {} : { REDIS_PASSWORD: password }),
      ...(tls ? tlsEnv(tls, clientCertificates) : {}),
    },
    async masters() {
      return (await topology()).filter((entry) => entry.master && entry.slots.length > 0).map((entry) => entry.node)
    },
    async masterOf(key) {
      const slot = await slotOf(key)
      const owner = (await topology()).find((entry) => entry.master && entry.slots.some(([first, last = first]) => first! <= slot && slot <= last!))
      if (!owner) throw new Error(`no master serves slot ${slot}`)
      return owner.node
    },
    async replicasOf(master) {
      const entries = await topology()
      const id = entries.find((entry) => entry.node === master)?.id
      return entries.filter((entry) => !entry.master && entry.masterId === id).map((entry) => entry.node)
    },
    idOf,
    async connectTo(node) {
      const redis = adminConnection(node.port)
      await redis.connect()
      return redis
    },
    anyNode,
    async addMaster() {
      const [master, replica] = await Promise.all([startNode(), startNode()])
      nodes.push(master, replica)
      const existing = `127.0.0.1:${nodes[0]!.port}`
      await redisCli('add-node', `127.0.0.1:${master.port}`, existing)
      await settled(nodes.slice(0, -1), adminConnection, { replication: false })
      await redisCli('add-node', `127.0.0.1:${replica.port}`, existing, '--cluster-slave', '--cluster-master-id', await idOf(master))
      await settled(nodes, adminConnection)
      return master
    },
    redisCli: (command, ...args) => redisCli(command, `127.0.0.1:${nodes[0]!.port}`, ...args),
    stop,
  }
}

/**
 * Every node sees a healthy cluster of all of `nodes`, and (unless `replication` is false)
 * every replica has caught up with its master.
 */
async function settled(nodes: TestRedis[], adminConnection: (port: number) => Redis, { replication: checkReplication = true } = {}): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS
  let last = ''
  while (Date.now() < deadline) {
    const states = await Promise.all(
      nodes.map(async (node) => {
        const redis = adminConnection(node.port)
        try {
          await redis.connect()
          const info = (await redis.call('CLUSTER', 'INFO')) as string
          const replication = await redis.info('replication')
          const ok = /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info)
          const role = /role:(\w+)/.exec(replication)?.[1]
          const synced = !checkReplication || (role === 'master' ? /connected_slaves:1/.test(replication) : /master_link_status:up/.test(replication))
          return ok && synced ? '' : `${node.port}: ${ok ? 'replication not in sync' : 'cluster not ok'}`
        } finally {
          redis.disconnect()
        }
      }),
    )
    last = states.filter(Boolean).join('; ')
    if (last === '') return
    await sleep(100)
  }
  throw new Error(`the test cluster did not settle within ${SETTLE_TIMEOUT_MS / 1000} s: ${last}`)
}

function connectionTo(port: number, password: string | undefined, tls: TestCertificates | undefined): Redis {
  const redis = new Redis({ host: '127.0.0.1', port, password, ...(tls && { tls: tls.clientTls }), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 2000 })
  redis.on('error', () => {})
  return redis
}
