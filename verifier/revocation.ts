// Revocation: a JWT stays valid until `exp` however the session ends, so a service that
// must honour logout at once asks whether the token's session still lives. One strategy
// today, through the gateway's Redis; RFC 7662 introspection (with a short cache) is meant
// to be a second `RevocationCheck` chosen in `revocationCheck` below.

import { sessionKeys } from '../src/sessions/session-keys.js'
import { VerifierUnavailable, type VerifiedAccessToken } from './verify.js'

export interface RevocationCheck {
  /** False once the session has ended; throws VerifierUnavailable when it cannot tell. */
  isActive(token: VerifiedAccessToken): Promise<boolean>
}

/** Anything with ioredis' `exists`: a Redis, a Cluster. */
export interface SessionRedis {
  exists(key: string): Promise<number>
}

export interface RedisRevocationOptions {
  /**
   * A client of the gateway's Redis. Configure it to fail fast, as the gateway does:
   * `{ enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 }`.
   */
  redis: SessionRedis
  /** Refuse with 503 when Redis has not answered within this long; default 1000 ms. */
  timeoutMs?: number
}

export type RevocationOptions = RedisRevocationOptions

export function revocationCheck(options: RevocationOptions | false | undefined): RevocationCheck | undefined {
  if (!options) return undefined
  if (typeof options.redis?.exists === 'function') return redisRevocation(options)
  throw new TypeError('revocation must be { redis } or false')
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
      let timer: NodeJS.Timeout | undefined
      // Bounds the wait even for a client that queues commands while disconnected.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
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
