// A provider ID token brought by a native SDK is accepted once (OIDC Core §15.5.2, replay),
// and it is spent only by a login that succeeded: a login that failed on our side (a
// storage outage) must not cost the client its credential, or its retry would be a 401.
//
// So a login first reserves the token's hash (SET NX: of parallel logins exactly one
// proceeds), then either spends it, remembered until the token itself expires, or
// releases it. The reservation expires by itself, so a login that never got to release
// (a crash, Redis lost mid-login) frees the token too; it outlives any login's own
// storage timeouts, so no second login can slip in while the first is still running.

import { InvalidGrant, StorageUnavailable } from '../common/errors.js'
import { hashSecret, randomSecret } from '../common/secrets.js'
import { inRedis, type RedisClient } from '../storage/redis.js'

/** Longer than any login can run: its storage waits share the 2 s request budget, its provider calls have their own timeouts. */
const RESERVATION_MS = 60_000
const SPENT = 'spent'

// Only the reservation that is still ours goes: never a spent mark, nor a later login's reservation.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
`

export interface IdTokenReservation {
  /** The login succeeded: the token stays used until it expires. */
  spend(): Promise<void>
  /** The login failed: the token may be used again. */
  release(): Promise<void>
}

export class UsedIdTokens {
  constructor(private readonly redis: RedisClient) {}

  /** Throws InvalidGrant for a spent token; StorageUnavailable (retry) while another login holds it. */
  async reserve(idToken: string, expiresAt: number): Promise<IdTokenReservation> {
    const key = `gw:used-id-token:${hashSecret(idToken)}`
    const reservation = `reserved:${randomSecret()}`
    const fresh = await inRedis(this.redis, () => this.redis.set(key, reservation, 'PX', RESERVATION_MS, 'NX'))
    if (fresh !== 'OK') {
      const holder = await inRedis(this.redis, () => this.redis.get(key))
      if (holder === SPENT) throw new InvalidGrant('this token was already used')
      // Undecided: a login with this token is running, or failed and its reservation has not
      // run out. A 401 here would make the client throw away a token that may still work.
      throw new StorageUnavailable('another login with this ID token is in progress; retry shortly')
    }
    return {
      spend: async () => {
        // A minute past the token's expiry: verification tolerates 30 s of clock skew beyond it.
        const ttlMs = Math.max(expiresAt - Date.now(), 0) + 60_000
        await inRedis(this.redis, () => this.redis.set(key, SPENT, 'PX', ttlMs))
      },
      release: async () => {
        await inRedis(this.redis, () => this.redis.eval(RELEASE, 1, key, reservation))
      },
    }
  }
}
