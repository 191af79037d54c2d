// A Redis that lost its data has logged every user out at once, and all the gateway would
// otherwise see is a wave of refresh tokens it does not know (401s), like any other. It
// happens when a server without persistence restarts, or when Sentinel promotes a server
// that came back empty (docs/operations.md, "Persistence and failover"). So the gateway keeps
// a marker in Redis, written once and never expiring, and looks for it each time its
// connection is made again: gone, or replaced by another instance that found it gone, the
// data went with it, and the gateway says so. One server or a Sentinel group only: a
// Cluster's keys live on many masters, and one marker would speak for one of them.

import { Cluster } from 'ioredis'
import { randomId } from '../common/secrets.js'
import { inRedis, type RedisClient } from './redis.js'

/** The marker: an id written by the first gateway instance to find none. */
export const MARKER_KEY = 'gw:dataset'

/** What the gateway logs when it found the data gone. */
export const LOST_DATA_MESSAGE =
  `Redis lost its data: the marker ${MARKER_KEY} this instance found before is gone, and every session and started login with it; ` +
  'users must log in again. A Redis without persistence restarted, or Sentinel promoted a server that came back empty ' +
  '(docs/operations.md, "Persistence and failover")'

/**
 * Calls `lost` each time the connection is made again to a Redis whose marker is not the
 * one found before: its data is gone. A check that fails (Redis gone again, or refusing
 * writes at maxmemory) is left to the next connection, and one that failed at the start
 * makes the next that succeeds the first. Returns what stops the checks.
 */
export async function watchForLostData(redis: RedisClient, lost: () => void): Promise<() => void> {
  if (redis instanceof Cluster) return () => {}
  let known = await currentMarker(redis).catch(() => undefined)
  let checking = Promise.resolve()
  const check = () => {
    checking = checking
      .then(async () => {
        const found = await currentMarker(redis)
        if (known !== undefined && found !== known) lost()
        known = found
      })
      .catch(() => {})
  }
  redis.on('ready', check)
  return () => redis.off('ready', check)
}

/** The marker, written first if there is none; a stalled Redis is not waited on. */
function currentMarker(redis: RedisClient): Promise<string | null> {
  return inRedis(redis, async () => {
    await redis.set(MARKER_KEY, randomId(), 'NX')
    return redis.get(MARKER_KEY)
  })
}
