// A Redis that lost its data has logged every user out at once, and all the gateway would
// otherwise see is a wave of refresh tokens it does not know (401s), like any other. It
// happens when a server without persistence restarts, when Sentinel promotes a server that
// came back empty, or when a Cluster master comes back empty before its replica took over
// (docs/operations.md, "Persistence and failover"). So the gateway keeps markers in Redis,
// written once and never expiring, and looks for them each time a connection is made again:
// one gone, or replaced by another instance that found it gone, the data went with it, and
// the gateway says so. A Cluster's keys live on many masters, so there it keeps one marker
// in every range of slots, and also looks every minute: a node's connection comes and goes
// with the cluster's topology, not only with a restart.

import calculateSlot from 'cluster-key-slot'
import { Cluster, type Redis } from 'ioredis'
import { randomId } from '../common/secrets.js'
import { inRedis, type RedisClient } from './redis.js'

/** The marker of one server or a Sentinel group: an id written by the first instance to find none. */
export const MARKER_KEY = 'gw:dataset'

/** What the gateway logs when it found data gone. */
export const LOST_DATA_MESSAGE =
  `Redis lost its data: a marker (${MARKER_KEY}) this instance found before is gone, and every session and started login with it; ` +
  'users must log in again. A Redis without persistence restarted, Sentinel promoted a server that came back empty, ' +
  'or a Cluster master came back empty before its replica took over (docs/operations.md, "Persistence and failover")'

/** How often a Cluster's markers are looked at besides its nodes' reconnects. */
const CLUSTER_CHECK_INTERVAL_MS = 60_000
const RETRY_AFTER_FAILED_CHECK_MS = 1000

/**
 * Calls `lost` each time a marker is found other than it was: its data is gone. A marker not
 * read yet is not known: the first read of it only learns it. A check that fails (Redis not
 * back yet, a cluster still down, writes refused at maxmemory) is tried again a second later.
 * Returns what stops the checks.
 */
export async function watchForLostData(redis: RedisClient, lost: () => void): Promise<() => void> {
  const markerKeys = redis instanceof Cluster ? () => clusterMarkerKeys(redis) : async () => [MARKER_KEY]
  const known = new Map<string, string | null>()
  let queued: Promise<void> | undefined
  let checking = Promise.resolve()
  let retry: NodeJS.Timeout | undefined
  let stopped = false
  const check = () => {
    // Reconnects come in bursts (every node of a cluster): one check waiting is enough.
    queued ??= checking = checking
      .then(async () => {
        queued = undefined
        clearTimeout(retry)
        let reported = false
        for (const key of new Set([...known.keys(), ...(await markerKeys())])) {
          const found = await currentMarker(redis, key)
          if (!reported && known.has(key) && known.get(key) !== found) {
            reported = true
            lost()
          }
          known.set(key, found)
        }
      })
      .catch(() => {
        // The reconnect that would otherwise check again may have come already.
        if (!stopped) retry = setTimeout(check, RETRY_AFTER_FAILED_CHECK_MS).unref()
      })
    return checking
  }
  await check()
  redis.on('ready', check)
  const stop = () => {
    stopped = true
    clearTimeout(retry)
    redis.off('ready', check)
  }
  if (!(redis instanceof Cluster)) return stop

  // Each node's connection: those made later, and those made already but not yet connected
  // (a replica's, until it is promoted and asked).
  const checkWhenReady = (node: Redis) => node.on('ready', check)
  for (const node of redis.nodes('all')) checkWhenReady(node)
  redis.on('+node', checkWhenReady)
  const timer = setInterval(check, CLUSTER_CHECK_INTERVAL_MS).unref()
  return () => {
    stop()
    clearInterval(timer)
    redis.off('+node', checkWhenReady)
    for (const node of redis.nodes('all')) node.off('ready', check)
  }
}

/** The marker, written first if there is none; a stalled Redis is not waited on. */
function currentMarker(redis: RedisClient, key: string): Promise<string | null> {
  return inRedis(redis, async () => {
    await redis.set(key, randomId(), 'NX')
    return redis.get(key)
  })
}

/** One marker per range of slots the cluster serves now, in the range's first slot. */
async function clusterMarkerKeys(cluster: Cluster): Promise<string[]> {
  const ranges = (await inRedis(cluster, () => cluster.call('CLUSTER', 'SLOTS'))) as [number, ...unknown[]][]
  return ranges.map(([firstSlot]) => markerKeyInSlot(firstSlot))
}

const markerKeysBySlot = new Map<number, string>()

/**
 * A key in `slot`: a hash tag found by counting, the same in every instance. A slot's key
 * stays the marker of its data wherever the slot moves (resharding moves keys with it).
 */
function markerKeyInSlot(slot: number): string {
  let key = markerKeysBySlot.get(slot)
  for (let tag = 0; key === undefined; tag++) {
    if (calculateSlot(tag.toString(36)) === slot) markerKeysBySlot.set(slot, (key = `${MARKER_KEY}:{${tag.toString(36)}}`))
  }
  return key
}
