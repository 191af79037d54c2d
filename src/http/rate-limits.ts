// Rate limits per client address, counted in Redis so every gateway instance shares them.
// They run at onRequest: a burst is refused before the body is read or a provider is called
// (SECURITY.md I1). The address is the socket's unless TRUST_PROXY names the proxies whose
// X-Forwarded-For is believed (I2).
//
// When the count cannot be taken (Redis down, frozen, or refusing writes at maxmemory) the
// request is refused with 503 and Retry-After, before anything else runs: a limiter that
// stepped aside let every login of an outage through to the provider (the code route needs
// no Redis before its provider call). The same holds for every limited route, refresh and
// logout included, and neither logs anyone out: refresh needs Redis anyway and a 503 (never a 401) tells the client to
// keep its refresh token and retry; a logout that gets 503 has ended nothing and is simply
// retried, which logout's idempotence makes safe (a 204 would claim a session ended that
// may still be live).

import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { RateLimited } from '../errors.js'
import { inRedis } from '../storage/redis.js'

export type RateLimitGroup = keyof Config['rateLimits']

export async function registerRateLimits(app: FastifyInstance, redis: Redis): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    store: countingIn(redis),
    // The plugin rethrows a store's error as it is; ours is already StorageUnavailable (503).
    skipOnError: false,
    hook: 'onRequest',
    errorResponseBuilder: (_request, context) => new RateLimited(`too many requests from this address; retry after ${context.after}`),
  })
}

/** Route config: a per-minute budget per address and route, sized by the route's group. */
export function rateLimitedAs(group: RateLimitGroup, config: Pick<Config, 'rateLimits'>) {
  return { rateLimit: { max: config.rateLimits[group], timeWindow: WINDOW_MS } }
}

// A fixed window per key: the first request of a window starts its expiry. One script, so
// a counter never lives without its expiry.
const COUNT = `
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {current, redis.call('PTTL', KEYS[1])}
`

const NAMESPACE = 'gw:rate:'
const WINDOW_MS = 60_000

/**
 * The plugin's store interface over our Redis connection. Unlike the plugin's own Redis
 * store, every count goes through inRedis: it shares the request's storage budget, and
 * any failure arrives as StorageUnavailable, which the error handler answers with 503.
 */
function countingIn(connection: Redis) {
  // EVALSHA, as the session scripts: the limiter runs on every refresh.
  connection.defineCommand('countRequest', { numberOfKeys: 1, lua: COUNT })
  const redis = connection as Redis & { countRequest(key: string, windowMs: number): Promise<[number, number]> }
  return class RedisCounter implements FastifyRateLimitStore {
    constructor(
      _options?: unknown,
      private readonly prefix = NAMESPACE,
    ) {}

    // The plugin also passes the route's window as a third argument (its typings leave it out).
    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindowMs = WINDOW_MS): void {
      inRedis(() => redis.countRequest(this.prefix + key, timeWindowMs)).then(
        ([current, ttl]) => callback(null, { current, ttl }),
        (error: Error) => callback(error),
      )
    }

    /** One counter per route, as the plugin's own stores keep them. */
    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): RedisCounter {
      // At run time the plugin hands over the route's merged limit settings, the route itself under `routeInfo`.
      const { routeInfo } = routeOptions as unknown as { routeInfo: { method: string; url: string } }
      return new RedisCounter(undefined, `${this.prefix}${routeInfo.method}${routeInfo.url}-`)
    }
  }
}
