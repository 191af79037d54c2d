// Rate limits per client address, counted in Redis so every gateway instance shares them.
// They run at onRequest: a burst is refused before the body is read or a provider is called
// (SECURITY.md I1). The address is the socket's unless TRUST_PROXY names the proxies whose
// X-Forwarded-For is believed (I2). If Redis is down the limiter steps aside and the route
// itself answers 503.

import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Config } from '../config.js'
import { RateLimited } from '../errors.js'

export type RateLimitGroup = keyof Config['rateLimits']

export async function registerRateLimits(app: FastifyInstance, redis: Redis): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    redis,
    nameSpace: 'gw:rate:',
    skipOnError: true,
    hook: 'onRequest',
    errorResponseBuilder: (_request, context) => new RateLimited(`too many requests from this address; retry after ${context.after}`),
  })
}

/** Route config: a per-minute budget per address and route, sized by the route's group. */
export function rateLimitedAs(group: RateLimitGroup, config: Pick<Config, 'rateLimits'>) {
  return { rateLimit: { max: config.rateLimits[group], timeWindow: 60_000 } }
}
