// Revocation: a JWT stays valid until `exp` however the session ends, so a service that
// must honour logout at once asks whether the token's session still lives: through the
// gateway's Redis where it shares it (immediate), or through the gateway's RFC 7662
// introspection endpoint with a short cache (a logout is seen within `cacheSeconds`).

import { sessionKeys } from './session-keys.js'
import { VerifierUnavailable, type VerifiedAccessToken } from './verify.js'

export interface RevocationCheck {
  /** False once the session has ended; throws VerifierUnavailable when it cannot tell. */
  isActive(token: VerifiedAccessToken, raw: string): Promise<boolean>
}

/** Anything with ioredis' `exists`: a Redis, a Cluster. */
export interface SessionRedis {
  exists(key: string): Promise<number>
  /** ioredis' connection state: anything but 'ready' is refused at once, nothing asked or queued. */
  readonly status?: string
}

export interface RedisRevocationOptions {
  /**
   * A client of the gateway's Redis. A Redis: make it fail fast, as the gateway does,
   * `{ enableOfflineQueue: false, maxRetriesPerRequest: 0 }`. A Cluster: ioredis' defaults,
   * which let a check wait for, or be sent again past, a node's connection that is opening or
   * closing (a handover); while the client is not ready at all, checks are refused unqueued.
   * `timeoutMs` bounds the wait (an ioredis `commandTimeout` shorter than it would decide
   * instead, and can fire while the answer is already waiting to be read, after the process was busy).
   */
  redis: SessionRedis
  /** Refuse with 503 when Redis has not answered within this long; default 1000 ms. */
  timeoutMs?: number
}

export interface IntrospectionRevocationOptions {
  introspection: {
    /** The gateway's `${PUBLIC_URL}/oauth/introspect`. */
    url: string
    /** This service's client credentials at the gateway (`npm run admin -- client:create`). */
    clientId: string
    clientSecret: string
    /** How long an answer is reused; default 5 s (a logout is seen within this long). */
    cacheSeconds?: number
    /** Refuse with 503 when the gateway has not answered within this long; default 2000 ms. */
    timeoutMs?: number
  }
}

export type RevocationOptions = RedisRevocationOptions | IntrospectionRevocationOptions

export function revocationCheck(options: RevocationOptions | false | undefined): RevocationCheck | undefined {
  if (!options) return undefined
  if ('introspection' in options) return introspectionRevocation(options)
  if (typeof options.redis?.exists === 'function') return redisRevocation(options)
  throw new TypeError('revocation must be { redis }, { introspection } or false')
}

/**
 * The gateway keeps `sessionKeys.session(sub, sid)` exactly while the session lives and
 * deletes it on logout, forced logout or reuse detection. A Redis we cannot reach fails
 * closed (503): the token is neither let through nor called invalid.
 */
function redisRevocation({ redis, timeoutMs = 1000 }: RedisRevocationOptions): RevocationCheck {
  return {
    async isActive({ sub, sid }) {
      // A client's (M2M) token belongs to no session: nothing to end, it lives until exp.
      if (sid === undefined) return true
      // A client that queues would otherwise pile up every check until Redis is back.
      if (redis.status !== undefined && redis.status !== 'ready') {
        throw new VerifierUnavailable('the session store is unavailable', { cause: new Error(`the Redis client is ${redis.status}`) })
      }
      let timer: NodeJS.Timeout | undefined
      // Bounds the wait even for a client that queues commands while disconnected.
      const timeout = new Promise<never>((_, reject) => {
        // Fires after the event loop's next read: an answer that came while the process was busy is not late.
        timer = setTimeout(() => setImmediate(() => reject(new Error(`no answer within ${timeoutMs} ms`))), timeoutMs)
      })
      try {
        return (await Promise.race([redis.exists(sessionKeys.session(sub, sid)), timeout])) === 1
      } catch (error) {
        throw new VerifierUnavailable('the session store is unavailable', { cause: error })
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

/** Answers kept at most; past it the oldest go first (a Map keeps insertion order). */
const MAX_CACHED_ANSWERS = 10_000

/**
 * RFC 7662: POST the token to the gateway, authenticated as this service (HTTP Basic), and
 * reuse the answer for `cacheSeconds` (keyed by `jti`). A gateway that cannot answer means
 * 503: the token is neither let through nor called invalid.
 */
function introspectionRevocation({ introspection }: IntrospectionRevocationOptions): RevocationCheck {
  const { url, clientId, clientSecret, cacheSeconds = 5, timeoutMs = 2000 } = introspection
  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')
  const answers = new Map<string, { active: boolean; until: number }>()
  return {
    async isActive({ claims }, raw) {
      const key = String(claims.jti)
      const cached = answers.get(key)
      if (cached && cached.until > Date.now()) return cached.active
      let active: boolean
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ token: raw, token_type_hint: 'access_token' }),
          signal: AbortSignal.timeout(timeoutMs),
        })
        if (!response.ok) throw new Error(`the introspection endpoint answered ${response.status}`)
        active = ((await response.json()) as { active?: unknown }).active === true
      } catch (error) {
        throw new VerifierUnavailable('the gateway cannot say whether the token is active', { cause: error })
      }
      answers.delete(key)
      answers.set(key, { active, until: Date.now() + cacheSeconds * 1000 })
      if (answers.size > MAX_CACHED_ANSWERS) answers.delete(answers.keys().next().value!)
      return active
    },
  }
}
