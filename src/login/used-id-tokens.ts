// A provider ID token brought by a native SDK is accepted once (OIDC Core §15.5.2, replay):
// its hash is remembered until the token itself expires.

import type { Redis } from 'ioredis'
import { InvalidGrant } from '../errors.js'
import { hashSecret } from '../secrets.js'
import { inRedis } from '../storage/redis.js'

export class UsedIdTokens {
  constructor(private readonly redis: Redis) {}

  async markUsed(idToken: string, expiresAt: number): Promise<void> {
    const ttlMs = Math.max(expiresAt - Date.now(), 0) + 60_000
    const fresh = await inRedis(() => this.redis.set(`gw:used-id-token:${hashSecret(idToken)}`, '1', 'PX', ttlMs, 'NX'))
    if (fresh !== 'OK') throw new InvalidGrant('this ID token was already used to log in')
  }
}
