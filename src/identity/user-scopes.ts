// What a user may do on a resource: the union of the scopes their roles grant there. Cached
// in Redis in the user's hash slot (sessionKeys.scopes: one hash per user, a field per
// resource), where the refresh-token rotation reads it in the same call (and a returning
// login, which reads the scopes with the user, writes it with its session): a cached answer
// younger than a minute is used as is; an older one is re-read, and used anyway if the
// database is down (refresh keeps working through a database outage).

import type { RedisClient as Redis } from '../storage/redis.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import { InvalidTarget, StorageUnavailable } from '../common/errors.js'
import { sessionKeys } from '../../verifier/session-keys.js'
import { inDatabase } from '../storage/database.js'
import { inRedis } from '../storage/redis.js'

/** Role changes reach new access tokens within this long. */
const FRESH_MS = 60_000

/** Scopes just read from the database, as they are cached: field `resource` of the user's hash. */
export interface ScopeCacheEntry {
  resource: string
  entry: string
  ttlSeconds: number
}

export class UserScopes {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: Redis,
    private readonly options: { ownResource: string; cacheTtlSeconds: number },
  ) {}

  /** Space-separated scopes for an access token, or undefined when the user holds none there. */
  async scopeFor(userId: string, resource?: string): Promise<string | undefined> {
    const cached = await inRedis(this.redis, () => this.redis.hget(sessionKeys.scopes(userId), resource ?? ''))
    return this.scopeFromCache(userId, resource, cached ?? '')
  }

  /**
   * The same, from a cache entry already read (the rotation returns it): the database is
   * asked only when the entry is missing or older than a minute.
   */
  async scopeFromCache(userId: string, resource: string | undefined, cached: string): Promise<string | undefined> {
    const known = parseEntry(cached)
    if (known && Date.now() - known.checkedAt < FRESH_MS) return known.scope
    let scopes: string[]
    try {
      scopes = await this.fromDatabase(userId, this.resourceOf(resource))
    } catch (error) {
      if (known && error instanceof StorageUnavailable) return known.scope
      throw error
    }
    const key = sessionKeys.scopes(userId)
    const fresh = this.cacheEntry(resource, scopes)
    await inRedis(this.redis, () => this.redis.multi().hset(key, fresh.resource, fresh.entry).expire(key, fresh.ttlSeconds).exec())
    return scopeOf(scopes)
  }

  /** The resource a token without an RFC 8707 `resource` is for: the gateway's own. */
  resourceOf(resource: string | undefined): string {
    return resource ?? this.options.ownResource
  }

  /** How scopes read from the database just now are cached, for whoever writes the user's hash (a session start does). */
  cacheEntry(resource: string | undefined, scopes: readonly string[]): ScopeCacheEntry {
    return { resource: resource ?? '', entry: `${Date.now()} ${scopes.join(' ')}`, ttlSeconds: this.options.cacheTtlSeconds }
  }

  /** RFC 8707: tokens are issued only for the gateway itself and resources operators configured. */
  async checkResource(resource: string | undefined): Promise<void> {
    if (resource === undefined || resource === this.options.ownResource) return
    const [roles, clients] = await inDatabase(() =>
      Promise.all([this.prisma.roleScope.count({ where: { resource } }), this.prisma.clientGrant.count({ where: { resource } })]),
    )
    if (roles + clients === 0) throw new InvalidTarget('the requested resource is unknown to this gateway')
  }

  private async fromDatabase(userId: string, resource: string): Promise<string[]> {
    const rows = await inDatabase(() =>
      this.prisma.roleScope.findMany({
        where: { resource, role: { users: { some: { user: { publicId: userId } } } } },
        select: { scope: true },
        distinct: ['scope'],
        orderBy: { scope: 'asc' },
      }),
    )
    return rows.map((row) => row.scope)
  }
}

/** The `scope` claim: space-separated, or undefined when the user holds none. */
export function scopeOf(scopes: readonly string[]): string | undefined {
  return scopes.length > 0 ? scopes.join(' ') : undefined
}

/** A cache entry: `<checkedAt ms> <scope> <scope> …`. */
function parseEntry(entry: string): { checkedAt: number; scope: string | undefined } | undefined {
  const space = entry.indexOf(' ')
  if (space < 0) return undefined
  const checkedAt = Number(entry.slice(0, space))
  if (!Number.isFinite(checkedAt)) return undefined
  return { checkedAt, scope: entry.slice(space + 1) || undefined }
}
