// Rate limits per client address, counted in Redis so every gateway instance shares them.
// They run at onRequest: a burst is refused before the body is read or a provider is
// called (RFC 9700 §4.13; ASVS 2.4.1). POST /auth/login is counted from onRequest too, but
// answered after its body (countedAlongside): its own Redis call runs during the count.
// The address is the socket's unless TRUST_PROXY names the proxies whose X-Forwarded-For
// is believed (ASVS 4.1.3). Introspection, which resource servers call for the requests
// they serve, counts per authenticated client instead, once the client is known
// (rateLimitedPerClient).
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
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import { RateLimited } from '../common/errors.js'
import { inRedis, type RedisClient } from '../storage/redis.js'
// @ts-expect-error the plugin ships no typings for its store modules (shape declared below)
import RedisStore from '@fastify/rate-limit/store/RedisStore.js'

export type RateLimitGroup = keyof Config['rateLimits']

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The budget a route's requests are counted in: what a 429 there is put down to in the metrics. */
    rateLimitGroup?: RateLimitGroup
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The OAuth client this request authenticated as; set by the route before rateLimitedPerClient counts. */
    oauthClient?: string
    /** The rate limiter's verdict, still being counted (countedAlongside): rejects with RateLimited (429) or StorageUnavailable (503). */
    admission?: Promise<void>
  }
}

export async function registerRateLimits(app: FastifyInstance, redis: RedisClient): Promise<void> {
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
  return { rateLimitGroup: group, rateLimit: { max: config.rateLimits[group], timeWindow: WINDOW_MS } }
}

/**
 * The same budget, counted alongside the request (POST /auth/login): the count starts at
 * onRequest like any other, but the request goes on reading its body while Redis counts,
 * and the route awaits the verdict (request.admission) only where it must: the login claims its
 * state meanwhile, so the two Redis round trips overlap, and it reaches no provider and no
 * database before the verdict. A refused request is answered as before (429 with
 * Retry-After, or 503), just after its body was read and validated. Same counter (key) as
 * rateLimitedAs.
 */
export function countedAlongside(app: FastifyInstance, group: RateLimitGroup, config: Pick<Config, 'rateLimits'>) {
  const count = app.rateLimit({
    max: config.rateLimits[group],
    timeWindow: WINDOW_MS,
    // Made outside a route, the limiter has no route to name its counter after (see countingIn).
    keyGenerator: (request) => `${request.method}${request.routeOptions.url}-${request.ip}`,
  })
  return {
    config: { rateLimitGroup: group },
    onRequest(request: FastifyRequest, reply: FastifyReply, done: () => void) {
      const verdict = count.call(app, request, reply) as Promise<void>
      // Awaited by the handler; a request refused for something else first never asks.
      verdict.catch(() => {})
      request.admission = verdict
      done()
    },
  }
}

/** The same budget for a route whose every effect is a deletion in Redis (see the top of this file). */
export function rateLimitedDeletionAs(group: RateLimitGroup, config: Pick<Config, 'rateLimits'>) {
  const limited = rateLimitedAs(group, config)
  return { ...limited, rateLimit: { ...limited.rateLimit, skipOnError: true } }
}

/**
 * A budget per authenticated client for a route whose own preHandler authenticates the
 * client (setting request.oauthClient, never throwing): a resource server behind one
 * address, or many behind one NAT, asks once per request it serves, far beyond what one
 * address may otherwise send. A request that did not authenticate counts against its
 * address with the group's budget, so guessing stays as limited as anywhere else. Counted
 * at preHandler, after the body is read (client_secret_post puts the client id there).
 */
export function rateLimitedPerClient(perClient: number, group: RateLimitGroup, config: Pick<Config, 'rateLimits'>) {
  const counted = (request: FastifyRequest) => (request.oauthClient === undefined ? 'address' : 'client')
  return {
    rateLimitGroup: group,
    rateLimit: {
      hook: 'preHandler' as const,
      timeWindow: WINDOW_MS,
      keyGenerator: (request: FastifyRequest) => (request.oauthClient === undefined ? `address:${request.ip}` : `client:${request.oauthClient}`),
      max: (request: FastifyRequest) => (request.oauthClient === undefined ? config.rateLimits[group] : perClient),
      errorResponseBuilder: (request: FastifyRequest, context: { after: string }) => new RateLimited(`too many requests from this ${counted(request)}; retry after ${context.after}`),
    },
  }
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
 * The plugin's own Redis store, run through inRedis: a count has its deadline, and any failure arrives as StorageUnavailable, which the error handler
 * answers with 503.
 */
function countingIn(redis: RedisClient) {
  return class GuardedCounter implements FastifyRateLimitStore {
    private readonly store: PluginRedisStore

    constructor(_options?: unknown, store?: PluginRedisStore) {
      this.store = store ?? (new RedisStore(false, false, redis, NAMESPACE) as PluginRedisStore)
    }

    // The plugin also passes the route's window and limit (its typings leave them out).
    incr(key: string, callback: CountCallback, timeWindowMs = WINDOW_MS, max = 0): void {
      inRedis(redis, () => new Promise<CountResult>((resolve, reject) => this.store.incr(key, (error, result) => (error ? reject(error) : resolve(result!)), timeWindowMs, max))).then(
        (result) => callback(null, result),
        (error: Error) => callback(error),
      )
    }

    // A route's counter is named after its method and URL. A limiter made outside a route
    // (app.rateLimit) has neither: its keyGenerator names the whole counter instead.
    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): GuardedCounter {
      // (The plugin passes the route's merged limit options, typings aside.)
      const { routeInfo } = routeOptions as unknown as { routeInfo: { url?: string } }
      return new GuardedCounter(undefined, routeInfo.url === undefined ? this.store : this.store.child(routeOptions))
    }
  }
}
