// The Redis connection: one server (REDIS_URL), a Redis Cluster (REDIS_CLUSTER_NODES), or the
// master a Sentinel group names (REDIS_SENTINELS). Fail fast rather than queue: with the offline
// queue off and a deadline on every call (inRedis: 1.5 s by default, shortened while Redis is
// not answering), an outage, a stall or a failover becomes a 503 within about 1.5 s, and ioredis
// reconnects by itself, after a failover to the new master.

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis, type Command, type RedisOptions, type RedisValue } from 'ioredis'
import { ConfigError, StorageUnavailable } from '../common/errors.js'

/** A call (inRedis) not answered this long after it was issued fails (503), unless REDIS_COMMAND_TIMEOUT_MS says longer. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 1500
/**
 * The deadline instead, while the last call on the client went unanswered, until one is
 * answered: a stalled Redis (frozen, swapping, blocked by a long command) costs a request
 * one full timeout however many calls it makes, and a Redis that is back answers at once.
 */
const STALLED_CALL_TIMEOUT_MS = 250
/** How long a write waits for its replicas (replicatedWrite); below the command timeout. */
const REPLICA_ACK_TIMEOUT_MS = 1000
/** A Redis that does not answer, a Cluster whose state stays `fail`, or Sentinels that name no reachable master, are not waited on for ever. */
const START_TIMEOUT_MS = 10_000

/**
 * The gateway's Redis: one server (reached directly or through Sentinel) or a Cluster. Both
 * take the same commands; on a Cluster every key that one command or script touches must
 * share a hash slot (the `{…}` part of our keys).
 */
export type RedisClient = Redis | Cluster

/** One Redis server's address (a Cluster seed node, a Sentinel). */
export interface HostPort {
  host: string
  port: number
}

/** A Redis AUTH: a password, and the ACL user it belongs to (Redis' `default` user without one). */
export interface RedisCredentials {
  username?: string
  password: string
}

/**
 * TLS to Redis. `ca`: the authorities to trust for its certificates (PEM) instead of Node's
 * public ones. `cert` and `key`: the client certificate shown to a Redis that asks for one
 * (tls-auth-clients), and its private key (PEM).
 */
export interface RedisTls {
  ca?: string
  cert?: string
  key?: string
}

/** What REDIS_TLS, REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE say (config.ts). */
export interface RedisTlsSettings {
  tls: boolean
  caFile?: string
  clientCertificate?: { certFile: string; keyFile: string }
}

/**
 * The TLS options the settings ask for, read from their files; undefined when they ask for
 * none (a rediss:// URL still speaks TLS, trusting Node's authorities). A file that cannot be
 * read or holds the wrong thing stops start-up, rather than every connection failing later
 * with the server's terse TLS alert.
 */
export async function loadRedisTls(settings: RedisTlsSettings): Promise<RedisTls | undefined> {
  const { tls, caFile, clientCertificate } = settings
  if (!tls && caFile === undefined && clientCertificate === undefined) return undefined
  return {
    ...(caFile !== undefined && { ca: await readAuthorities(caFile, 'REDIS_TLS_CA_FILE') }),
    ...(clientCertificate && (await readClientCertificate(clientCertificate.certFile, clientCertificate.keyFile))),
  }
}

/**
 * The PEM certificates in `file`, for RedisTls.ca; a file that cannot be read, holds none, or
 * holds one that does not parse (cut short while it was being written) stops start-up. (OpenSSL
 * would skip such a certificate, and trust fewer authorities than the file names.)
 */
export async function readAuthorities(file: string, variable: string): Promise<string> {
  const text = await readSetting(file, variable)
  const begun = text.split('-----BEGIN CERTIFICATE-----').length - 1
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  if (begun === 0) throw new ConfigError([`${variable}: "${file}" holds no PEM certificate`])
  if (blocks.length !== begun || !blocks.every(parses)) throw new ConfigError([`${variable}: "${file}" holds a PEM certificate that does not parse`])
  return text
}

function parses(pem: string): boolean {
  try {
    new X509Certificate(pem)
    return true
  } catch {
    return false
  }
}

/**
 * The client certificate (the first in `certFile`, any others its chain) and its unencrypted
 * private key, checked here: that the key is the certificate's, and that the certificate is
 * valid today.
 */
async function readClientCertificate(certFile: string, keyFile: string): Promise<Pick<RedisTls, 'cert' | 'key'>> {
  const [cert, key] = await Promise.all([readSetting(certFile, 'REDIS_TLS_CERT_FILE'), readSetting(keyFile, 'REDIS_TLS_KEY_FILE')])
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch {
    throw new ConfigError([`REDIS_TLS_CERT_FILE: "${certFile}" holds no PEM certificate`])
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw new ConfigError([`REDIS_TLS_KEY_FILE: "${keyFile}" holds no unencrypted PEM private key`])
  }
  const problems: string[] = []
  if (!certificate.checkPrivateKey(privateKey)) problems.push(`REDIS_TLS_KEY_FILE: "${keyFile}" is not the private key of the certificate in REDIS_TLS_CERT_FILE`)
  const now = Date.now()
  if (Date.parse(certificate.validTo) < now) problems.push(`REDIS_TLS_CERT_FILE: the certificate in "${certFile}" expired on ${certificate.validTo}`)
  if (Date.parse(certificate.validFrom) > now) problems.push(`REDIS_TLS_CERT_FILE: the certificate in "${certFile}" is not valid before ${certificate.validFrom}`)
  if (problems.length > 0) throw new ConfigError(problems)
  // What the first certificate's checks leave out (a chain certificate that does not parse)
  // would make every connection attempt throw, which ends ioredis' reconnecting for good.
  try {
    createSecureContext({ cert, key })
  } catch (error) {
    throw new ConfigError([`REDIS_TLS_CERT_FILE: OpenSSL cannot use the certificates in "${certFile}" (${(error as Error).message})`])
  }
  return { cert, key }
}

async function readSetting(file: string, variable: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch {
    throw new ConfigError([`${variable}: cannot read the file "${file}"`])
  }
}

/**
 * Where the gateway's Redis is: what config.ts read from REDIS_URL, REDIS_CLUSTER_NODES or
 * REDIS_SENTINELS. A URL carries its own credentials and says TLS itself (rediss://), `tls`
 * then only brings an authority or a client certificate; `credentials` are the servers' of a
 * Cluster or a Sentinel group, `sentinelCredentials` the Sentinels' own; `tls` is for all of a
 * group's connections.
 */
export type RedisTarget =
  | { url: string; tls?: RedisTls }
  | { clusterNodes: HostPort[]; credentials?: RedisCredentials; tls?: RedisTls }
  | { sentinels: HostPort[]; sentinelName: string; credentials?: RedisCredentials; sentinelCredentials?: RedisCredentials; tls?: RedisTls }

export interface RedisLogger {
  warn(object: unknown, message?: string): void
}

export async function connectRedis(target: RedisTarget, log: RedisLogger, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<RedisClient> {
  const redis = createClient(target)
  commandTimeouts.set(redis, commandTimeoutMs)
  let lastWarning = 0
  let lastProblem: Error | undefined
  const warn = (error: Error & { lastNodeError?: Error }) => {
    // A Cluster's "Failed to refresh slots cache." holds the node's own reason.
    lastProblem = error.lastNodeError ?? error
    // One line per second at most while Redis is down or failing over.
    if (Date.now() - lastWarning > 1000) {
      lastWarning = Date.now()
      log.warn({ err: { message: error.message } }, 'redis connection problem')
    }
  }
  redis.on('error', warn)
  // A Cluster reports each node's trouble apart from its own.
  if (redis instanceof Cluster) redis.on('node error', warn)
  try {
    const failed = async (error: unknown) => {
      throw explained(error, lastProblem?.message.endsWith(CONNECTION_CLOSED) ? ((await askedDirectly(target)) ?? lastProblem) : lastProblem, tlsOf(target))
    }
    await withinStartTimeout(redis.connect().then(() => assertNoEviction(redis), failed), failed)
  } catch (error) {
    redis.disconnect()
    throw error
  }
  return redis
}

function createClient(target: RedisTarget): RedisClient {
  const reconnectDelay = (attempt: number) => Math.min(attempt * 100, 1000)
  const failFast = {
    enableOfflineQueue: false,
    // No auto-pipelining: ioredis keeps one auto-pipeline in flight per connection and queues
    // everything issued meanwhile behind it, which left the gateway's thread idle about 7 % of
    // the time under refresh load (bench/README.md). Written at once, commands still share the
    // connection without waiting for each other's answers; refresh rotations share writes
    // without that wait (GatheringRedis).
    enableAutoPipelining: false,
    lazyConnect: true,
  }
  const perConnection = {
    maxRetriesPerRequest: 0,
    // No commandTimeout: inRedis gives every call its deadline, and the start its own. ioredis'
    // timer would also bind the commands it sends while connecting, so a Redis busy for a few
    // seconds when the gateway starts would fail the start; and it costs a timer per command.
    connectTimeout: 2000,
  }
  if ('clusterNodes' in target) {
    return new ReadyOrRefusingCluster(target.clusterNodes, {
      ...failFast,
      // Refused while the Cluster is not ready (ReadyOrRefusingCluster); once it is, a command
      // for a node whose connection is opening waits in that node's queue.
      enableOfflineQueue: true,
      clusterRetryStrategy: reconnectDelay,
      // A command whose connection dropped may have run: answer 503 rather than send it
      // again (a login state's GETDEL or a signup ticket's claim must not run twice), as
      // maxRetriesPerRequest 0 does for one server. Refusals that guarantee nothing ran
      // (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) are still followed.
      retryDelayOnFailover: 0,
      // A node that drops is not redialled (ioredis' default): the slots are looked up again
      // on a MOVED or CLUSTERDOWN (replicatedWrite's pipelines ask for it themselves), and
      // every 2 s, so a change no command has met yet (a promoted replica) is known anyway.
      slotsRefreshInterval: 2000,
      // Over TLS a seed is dialled by the name it was given, and its certificate checked against
      // that name. ioredis would dial the address the name resolves to and check the certificate
      // against the address, which managed clusters' certificates do not name (ioredis' README,
      // on ElastiCache). Nodes learned from the cluster are dialled as they announce themselves.
      ...(target.tls && { dnsLookup: (address: string, found: (error: null, address: string) => void) => found(null, address) }),
      redisOptions: { ...perConnection, ...target.credentials, ...(target.tls && { tls: target.tls }) },
    })
  }
  // RESP2 replies (ioredis' default), which the subclass is typed for.
  const options: RedisOptions & { replyMapping?: 'legacy' } = { ...failFast, ...perConnection, retryStrategy: reconnectDelay }
  if ('sentinels' in target) {
    return new GatheringRedis({
      ...options,
      ...target.credentials,
      sentinelUsername: target.sentinelCredentials?.username,
      sentinelPassword: target.sentinelCredentials?.password,
      ...(target.tls && { tls: target.tls, sentinelTLS: target.tls, enableTLSForSentinelMode: true }),
      sentinels: target.sentinels,
      name: target.sentinelName,
      sentinelRetryStrategy: reconnectDelay,
      sentinelCommandTimeout: 1000,
      // Every reconnection asks the Sentinels for the master, and a demoted master closes its
      // clients' connections; one demoted behind our back answers READONLY: ask again. (Not
      // ioredis' failoverDetector on top: its +switch-master handler can abandon a
      // reconnection under way, after which ioredis gives the client up for good.)
      reconnectOnError: (error) => error.message.startsWith('READONLY'),
    })
  }
  return target.url.startsWith('/') ? new GatheringRedis({ ...options, path: target.url }) : new GatheringRedis(target.url, { ...options, ...(target.tls && { tls: target.tls }) })
}

/**
 * A Cluster that refuses a command at once while it is not ready (not yet started, or
 * reconnecting after it lost every node): a storage outage answers 503 fast, and nothing piles
 * up meanwhile. Once it is ready, a command for a node whose connection is still opening (a
 * replica just promoted by a handover, a node first named by a MOVED) waits for it in that
 * node's queue, bounded by connectTimeout. ioredis' enableOfflineQueue: false would refuse
 * those too, unsent: a rolling upgrade's handovers cost every write in flight a 503.
 */
class ReadyOrRefusingCluster extends Cluster {
  override sendCommand(command: Command, stream?: Parameters<Cluster['sendCommand']>[1], node?: unknown): unknown {
    // CLUSTER commands are the Cluster's own ready check.
    if (this.status !== 'ready' && command.name !== 'cluster') {
      command.reject(new Error(`the Redis Cluster is not ready (${this.status})`))
      return command.promise
    }
    return super.sendCommand(command, stream, node)
  }
}

/**
 * Issues `issue`'s commands (a refresh rotation's) to be written with the other gathered
 * commands of this turn of the event loop, in one socket write (GatheringRedis). Everything
 * else is written at once. A Cluster writes each command at once.
 */
export function gathered<T>(redis: RedisClient, issue: () => T): T {
  return redis instanceof GatheringRedis ? redis.gather(issue) : issue()
}

/**
 * The connection to one server (or to the master a Sentinel group names). Each write to a
 * redis-server wakes it, and the writer pays for the wake-up in its write system call: on a
 * 2-CPU VM that was the largest single item of the gateway's thread per refresh (bench/README.md).
 * Under refresh load many requests' rotations arrive in one turn of the event loop, so the
 * gathered commands (gathered()) go out together when the turn's I/O callbacks are done
 * (setImmediate): the socket is corked until then. Nothing waits for earlier answers (unlike
 * ioredis' auto-pipelining), and order is kept: any other command is written at once and
 * takes what was gathered before it along, so a login's calls are never held back.
 */
class GatheringRedis extends Redis {
  /** The socket corked for this turn's gathered commands. */
  private corked: Socket | undefined
  private gathering = false

  gather<T>(issue: () => T): T {
    this.gathering = true
    try {
      return issue()
    } finally {
      this.gathering = false
    }
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    if (this.gathering && this.corked === undefined && this.status === 'ready') {
      const socket = (this.corked = this.stream)
      socket.cork()
      setImmediate(() => this.release(socket))
    }
    const sent = super.sendCommand(command, stream)
    if (!this.gathering && this.corked !== undefined) this.release(this.corked)
    return sent
  }

  private release(socket: Socket): void {
    if (this.corked !== socket) return
    this.corked = undefined
    socket.uncork()
  }
}

/** What ioredis says of a connection that ended without saying why. */
const CONNECTION_CLOSED = 'Connection is closed.'

/**
 * A failure to connect at start-up, with the connection's own last error: ioredis says "None
 * of startup nodes is available" or "Connection is closed." where Redis said why (NOAUTH,
 * WRONGPASS, ECONNREFUSED, a TLS alert), and what to check. Its messages never hold a password.
 */
function explained(error: unknown, problem: Error | undefined, tls: RedisTls | undefined): unknown {
  if (!problem && error instanceof StartTimedOut) {
    // No connection failed: they were made, and nothing came back.
    return new Error(`${error.message}: connected, but Redis answered nothing (a stalled server, or not Redis on that port)`, { cause: error })
  }
  if (!(error instanceof Error) || !problem || error.message.includes(problem.message)) return error
  // OpenSSL's message is a multi-line record; its reason says it ("tlsv13 alert certificate required").
  const reason = (problem as { reason?: unknown }).reason
  const said = typeof reason === 'string' && problem.message.trim().includes('\n') ? reason : problem.message.trim()
  return new Error(`${error.message} (last connection error: ${said})${hintFor(said, tls)}`, { cause: error })
}

/** What to check for `problem`; `tls`: the connection's TLS options, undefined without TLS. */
function hintFor(problem: string, tls: RedisTls | undefined): string {
  if (/\b(NOAUTH|WRONGPASS)\b/.test(problem)) {
    return '; Redis refused the credentials: check REDIS_PASSWORD and REDIS_USERNAME, REDIS_SENTINEL_PASSWORD for the Sentinels, or those in REDIS_URL'
  }
  // TLS 1.3: a server that refuses the client's certificate, or its lack of one, sends its alert
  // after the handshake, or just resets the connection.
  if (tls?.cert !== undefined && (/alert/.test(problem) || /ECONNRESET/.test(problem))) {
    return "; Redis refused the gateway's client certificate (REDIS_TLS_CERT_FILE): it must be valid, and signed by an authority in Redis' tls-ca-cert-file"
  }
  if (/certificate required/i.test(problem) || (tls && /ECONNRESET/.test(problem))) {
    return '; a Redis that asks for a client certificate closes a connection without one: check REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE'
  }
  if (tls && /certificate|unable to verify|altnames/i.test(problem)) {
    return "; the gateway did not trust Redis' certificate: check REDIS_TLS_CA_FILE, and that the certificate names the host the gateway dials"
  }
  // ioredis' words for a command (CLUSTER SLOTS, a Sentinel's question) that got no answer in time.
  if (problem === 'timeout' || problem.endsWith('Command timed out')) return '; Redis did not answer in time: a stalled server, or not Redis on that port'
  if (!tls && (problem === CONNECTION_CLOSED || /ECONNRESET/.test(problem))) {
    return '; a Redis that speaks only TLS closes plain connections: REDIS_TLS=true, or rediss:// in REDIS_URL'
  }
  return ''
}

/** The TLS options of `target`'s connections; undefined without TLS (a rediss:// URL with no options has `{}`). */
function tlsOf(target: RedisTarget): RedisTls | undefined {
  return target.tls ?? ('url' in target && target.url.startsWith('rediss://') ? {} : undefined)
}

/**
 * ioredis' Cluster asks for its slots, and its Sentinel client for the master, on connections
 * whose errors it drops, and says only "Connection is closed.": the first seed node or
 * Sentinel, asked directly, says why (a TLS or AUTH refusal). Undefined for one server.
 */
async function askedDirectly(target: RedisTarget): Promise<Error | undefined> {
  if ('url' in target) return undefined
  const [address, credentials] = 'clusterNodes' in target ? [target.clusterNodes[0], target.credentials] : [target.sentinels[0], target.sentinelCredentials]
  const probe = new Redis({
    ...address,
    ...credentials,
    ...(target.tls && { tls: target.tls }),
    lazyConnect: true,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    // A node that accepts the connection and then says nothing must not hold the start-up's failure back.
    connectTimeout: 2000,
    commandTimeout: 2000,
  })
  let problem: Error | undefined
  probe.on('error', (error: Error) => (problem ??= error))
  try {
    await probe.connect()
    await probe.ping()
  } catch (error) {
    problem ??= error instanceof Error ? error : undefined
  } finally {
    probe.disconnect()
  }
  return problem
}

class StartTimedOut extends Error {}

/** `failed`: throws the start-up's failure, explained; the timeout is one. */
async function withinStartTimeout(connecting: Promise<void>, failed: (error: Error) => Promise<never>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((resolve) => {
    timer = setTimeout(() => resolve(failed(new StartTimedOut(`Redis was not ready within ${START_TIMEOUT_MS / 1000} s of start-up`))), START_TIMEOUT_MS)
  })
  try {
    await Promise.race([connecting, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Eviction would silently drop used-token markers and revocations, so reuse detection
 * would fail open: refuse to run on a Redis that evicts (redis.io, "Key eviction"). In a
 * Cluster every master holds some users' sessions, so every master is asked.
 */
async function assertNoEviction(redis: RedisClient): Promise<void> {
  for (const { master, address } of mastersOf(redis)) {
    const info = await master.info('memory')
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1]
    if (policy && policy !== 'noeviction') {
      throw new Error(`Redis maxmemory-policy is "${policy}"${address ? ` on ${address}` : ''}; the gateway requires "noeviction"`)
    }
  }
}

/** The masters holding sessions, for start-up checks: a Cluster's each with its address (for the message), or the one server. */
export function mastersOf(redis: RedisClient): { master: Redis; address?: string }[] {
  if (!(redis instanceof Cluster)) return [{ master: redis }]
  return redis.nodes('master').map((master) => ({ master, address: `${master.options.host}:${master.options.port}` }))
}

/**
 * Runs one write command and, when `replicas` > 0, `WAIT replicas 1000` right behind it in
 * one pipeline: one round trip, on the connection that ran the write (in a Cluster, the
 * master of the write's keys), so WAIT counts the replicas that hold this write. Resolves
 * with the write's reply. When fewer replicas acknowledge it in time, the write is on the
 * master but may not survive a failover: StorageUnavailable (503), so the client does not
 * take it as done and retries (the session scripts are written to be run again).
 *
 * On a Cluster whose slot is moving (resharding), a pair the master refused without running
 * it is sent again (CLUSTER_REDIRECT).
 *
 * `command` is the client's own method: a built-in (`set`) or a script given to
 * `defineCommand` (`startSession`, `rotateRefreshToken`). With `replicas` 0 it is
 * simply called. Call it inside inRedis, like any Redis call.
 */
export async function replicatedWrite<T>(redis: RedisClient, replicas: number, command: string, ...args: RedisValue[]): Promise<T> {
  const issue = (target: object): unknown => {
    const method = (target as Record<string, unknown>)[command]
    if (typeof method !== 'function') throw new TypeError(`the Redis client has no command "${command}"`)
    return method.apply(target, args)
  }
  if (replicas === 0) return (await issue(redis)) as T
  let write: [Error | null, unknown] | undefined
  let wait: [Error | null, unknown] | undefined
  for (let redirects = 0; ; redirects++) {
    const pipeline = redis.pipeline()
    // A script's first use on a connection is sent as EVAL, so it runs here, before the WAIT.
    issue(pipeline)
    pipeline.wait(replicas, REPLICA_ACK_TIMEOUT_MS)
    ;[write, wait] = (await pipeline.exec()) ?? []
    if (!write || !wait) throw new Error('the write and its WAIT did not run')
    if (!write[0]) break
    if (!(redis instanceof Cluster) || redirects === MAX_REDIRECTS || !CLUSTER_REDIRECT.test(write[0].message)) throw write[0]
    await redirected(redis, write[0].message)
  }
  if (wait[0]) throw wait[0]
  const acknowledged = Number(wait[1])
  if (acknowledged < replicas) {
    throw new StorageUnavailable(`the write reached ${acknowledged} of ${replicas} replica(s) within ${REPLICA_ACK_TIMEOUT_MS} ms`)
  }
  return write[1] as T
}

/**
 * Failures after which a write may or may not have run, its answer lost. Its connection closed
 * (ioredis closes a Cluster node's connection, commands in flight and all, when a slot refresh
 * no longer lists the node, as just after a master handed over to its replica): "Connection is
 * closed.", or for the WAIT behind an answered write "Command aborted due to connection close".
 * Or that WAIT was cut short: Redis unblocks it when its master becomes a replica.
 */
const ANSWER_LOST = /^(Connection is closed\.|Command aborted due to connection close|UNBLOCKED )/

/**
 * Runs `write`, and once more when its answer was lost (ANSWER_LOST). Only for a write whose
 * second run answers as its first did: a refresh rotation within its grace (the same successor).
 * Any other write answers 503 then, as a write on a dropped connection must. Call it inside
 * inRedis, whose one deadline covers both runs.
 */
export async function rerunIfAnswerLost<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write()
  } catch (error) {
    if (!(error instanceof Error) || !ANSWER_LOST.test(error.message)) throw error
    return await write()
  }
}

/**
 * A Cluster's refusals of a command it did not run, because its slot is moving between masters
 * (resharding): ASK while the slot's keys are moved, TRYAGAIN while they are split between the
 * two, MOVED once the slot has moved. ioredis follows them for a command of its own, but not
 * in a pipeline whose other command (WAIT) ran; replicatedWrite sends the pair again.
 */
const CLUSTER_REDIRECT = /^(ASK|MOVED|TRYAGAIN|CLUSTERDOWN) /
/** Redirects followed per write: a slot of a few sessions moves within milliseconds. */
const MAX_REDIRECTS = 8
const REDIRECT_DELAY_MS = 25

/**
 * Waits until a refused write is worth sending again: a moment for a slot still moving, or
 * for the other nodes to hear of a move or a handover, then (after a MOVED) the slot map
 * renewed from them.
 */
async function redirected(cluster: Cluster, refusal: string): Promise<void> {
  await sleep(REDIRECT_DELAY_MS)
  if (refusal.startsWith('MOVED')) await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()))
}

/** Clients whose last call went unanswered for its whole deadline (see STALLED_CALL_TIMEOUT_MS). */
const stalled = new WeakSet<RedisClient>()
/** Each client's deadline for a call, as connectRedis was given it. */
const commandTimeouts = new WeakMap<RedisClient, number>()

/**
 * Runs one Redis interaction on `redis`; any failure, or no answer within the deadline,
 * becomes StorageUnavailable (503). The deadline starts in the turn of the event loop after
 * the call: a process too busy to get back to its event loop (a long synchronous step, a
 * starved CPU) does not count its own busyness as Redis' lateness. A command abandoned this
 * way may still run later (Redis executes what reached its socket): the scripts are written
 * for that. Commands are always sent, so an undo step (putting back what a failed request
 * took) issued before a client's retry reaches Redis ahead of it.
 */
export async function inRedis<T>(redis: RedisClient, operation: () => Promise<T>): Promise<T> {
  const deadlineMs = stalled.has(redis) ? STALLED_CALL_TIMEOUT_MS : (commandTimeouts.get(redis) ?? DEFAULT_COMMAND_TIMEOUT_MS)
  let starting: NodeJS.Immediate | undefined
  let timer: NodeJS.Timeout | undefined
  try {
    const answer = operation()
    const late = new Promise<never>((_, reject) => {
      starting = setImmediate(() => {
        // The timer can fire in the same turn of the event loop as an answer already waiting
        // on the socket (after the process itself was busy): let that turn read it first.
        timer = setTimeout(() => setImmediate(() => reject(new RedisStalled(deadlineMs))), deadlineMs)
      })
    })
    const result = await Promise.race([answer, late])
    stalled.delete(redis)
    return result
  } catch (error) {
    if (error instanceof RedisStalled) stalled.add(redis)
    throw new StorageUnavailable('the session store is unavailable', { cause: error })
  } finally {
    clearImmediate(starting)
    clearTimeout(timer)
  }
}

class RedisStalled extends Error {
  constructor(deadlineMs: number) {
    super(`Redis did not answer within ${deadlineMs} ms`)
    this.name = 'RedisStalled'
  }
}

/**
 * Starts an undo step (putting back a claimed ticket, freeing a reserved credential) after
 * a failure, without making the failed request's answer wait for it. Its first command is
 * issued before this returns, so on the same connection a client's retry reaches Redis
 * after it.
 */
export function undoInBackground(undo: () => Promise<unknown>): void {
  undo().catch(() => {})
}
