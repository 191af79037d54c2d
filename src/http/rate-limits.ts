// Rate limits per client address, counted in Redis so every gateway instance shares them.
// They run at onRequest: a burst is refused before the body is read or a provider is
// called (RFC 9700 §4.13; ASVS 2.4.1). The address is the socket's unless TRUST_PROXY names
// the proxies whose X-Forwarded-For is believed (ASVS 4.1.3).
//
// When the count cannot be taken (Redis down, frozen, or refusing writes at maxmemory) the
// request is refused with 503 and Retry-After, before anything else runs: a limiter that
// stepped aside let every login of an outage through to the provider (the code route needs
// no Redis before its provider call). Refresh is refused the same way and logs no one out:
// it needs Redis anyway, and a 503 (never a 401) tells the client to keep its token and retry.
//
// Logout is the exception (rateLimitedDeletionAs): all it does is delete from Redis, so when
// the count cannot be taken it goes on and meets the same Redis itself. Down or frozen, the
// logout answers 503 there and ended nothing; full (maxmemory refuses the count's write but
// never a deletion), the session still ends, as the user asked.

import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { RateLimited } from '../errors.js'
import { inRedis } from '../storage/redis.js'
// @ts-expect-error the plugin ships no typings for its store modules (shape declared below)
import RedisStore from '@fastify/rate-limit/store/RedisStore.js'

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

/** The same budget for a route whose every effect is a deletion in Redis (see the top of this file). */
export function rateLimitedDeletionAs(group: RateLimitGroup, config: Pick<Config, 'rateLimits'>) {
  return { rateLimit: { ...rateLimitedAs(group, config).rateLimit, skipOnError: true } }
}

const NAMESPACE = 'gw:rate:'
const WINDOW_MS = 60_000

type CountResult = { current: number; ttl: number }
type CountCallback = (error: Error | null, result?: CountResult) => void
/** The plugin's own Redis store (its typings leave out the window and limit it takes). */
interface PluginRedisStore {
  incr(key: string, callback: CountCallback, timeWindowMs: number, max: number): void
  child(routeOptions: unknown): PluginRedisStore
}

/**
 * The plugin's own Redis store, run through inRedis: every count shares the request's
 * storage budget, and any failure arrives as StorageUnavailable, which the error handler
 * answers with 503.
 */
function countingIn(redis: Redis) {
  return class BudgetedCounter implements FastifyRateLimitStore {
    private readonly store: PluginRedisStore

    constructor(_options?: unknown, store?: PluginRedisStore) {
      this.store = store ?? (new RedisStore(false, false, redis, NAMESPACE) as PluginRedisStore)
    }

    // The plugin also passes the route's window and limit (its typings leave them out).
    incr(key: string, callback: CountCallback, timeWindowMs = WINDOW_MS, max = 0): void {
      inRedis(() => new Promise<CountResult>((resolve, reject) => this.store.incr(key, (error, result) => (error ? reject(error) : resolve(result!)), timeWindowMs, max))).then(
        (result) => callback(null, result),
        (error: Error) => callback(error),
      )
    }

    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): BudgetedCounter {
      return new BudgetedCounter(undefined, this.store.child(routeOptions))
    }
  }
}
