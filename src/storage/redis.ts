// The Redis connection. Fail fast rather than queue: with the offline queue off, a command
// timeout and one storage budget per request (storage-budget.ts), an outage becomes a 503
// within that budget, and ioredis reconnects by itself when the server is back.

import { Redis } from 'ioredis'
import { StorageUnavailable } from '../errors.js'
import { withinBudget } from './storage-budget.js'

/** One command that takes longer fails; a request's storage budget may cut it shorter. */
const REDIS_COMMAND_TIMEOUT_MS = 1500

export type { Redis }

export interface RedisLogger {
  warn(object: unknown, message?: string): void
}

export async function connectRedis(url: string, log: RedisLogger): Promise<Redis> {
  const options = {
    enableOfflineQueue: false,
    // Commands issued in the same tick share one socket write (each rotation stays one script).
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    lazyConnect: true,
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000),
  }
  const redis = url.startsWith('/') ? new Redis({ ...options, path: url }) : new Redis(url, options)
  let lastWarning = 0
  redis.on('error', (error: Error) => {
    // One line per second at most while Redis is down.
    if (Date.now() - lastWarning > 1000) {
      lastWarning = Date.now()
      log.warn({ err: { message: error.message } }, 'redis connection problem')
    }
  })
  try {
    await redis.connect()
    await assertNoEviction(redis)
  } catch (error) {
    redis.disconnect()
    throw error
  }
  return redis
}

/**
 * Eviction would silently drop used-token markers and revocations, so reuse detection
 * would fail open: refuse to run on a Redis that evicts (redis.io, "Key eviction").
 */
async function assertNoEviction(redis: Redis): Promise<void> {
  const info = await redis.info('memory')
  const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1]
  if (policy && policy !== 'noeviction') {
    throw new Error(`Redis maxmemory-policy is "${policy}"; the gateway requires "noeviction"`)
  }
}

/**
 * Runs one Redis interaction; any failure of the connection, or the request's storage
 * budget running out first, becomes StorageUnavailable. A command abandoned this way may
 * still run later (Redis executes what reached its socket): the scripts are written for that.
 */
export async function inRedis<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await withinBudget(operation)
  } catch (error) {
    throw new StorageUnavailable('the session store is unavailable', { cause: error })
  }
}
