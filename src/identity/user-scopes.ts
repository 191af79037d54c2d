// What a user may do on a resource: the union of the scopes their roles grant there. Read
// through a Redis cache in the user's hash slot, so a refresh does not touch the database:
// a cached answer younger than a minute is used as is; an older one is re-read, and used
// anyway if the database is down (refresh keeps working through a database outage).

import type { Redis } from 'ioredis'
import type { PrismaClient } from '../generated/prisma/client.js'
import { InvalidTarget, StorageUnavailable } from '../errors.js'
import { hashSecret } from '../secrets.js'
import { inDatabase } from '../storage/database.js'
import { inRedis } from '../storage/redis.js'

/** Role changes reach new access tokens within this long. */
const FRESH_MS = 60_000

export class UserScopes {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly redis: Redis,
    private readonly options: { ownResource: string; cacheTtlSeconds: number },
  ) {}

  /** Space-separated scopes for an access token, or undefined when the user holds none there. */
  async scopeFor(userId: string, resource = this.options.ownResource): Promise<string | undefined> {
    const key = `gw:{${userId}}:scopes:${hashSecret(resource)}`
    const cached = await inRedis(() => this.redis.get(key))
    const known = cached === null ? undefined : (JSON.parse(cached) as { scopes: string[]; checkedAt: number })
    if (known && Date.now() - known.checkedAt < FRESH_MS) return join(known.scopes)
    let scopes: string[]
    try {
      scopes = await this.fromDatabase(userId, resource)
    } catch (error) {
      if (known && error instanceof StorageUnavailable) return join(known.scopes)
      throw error
    }
    const value = JSON.stringify({ scopes, checkedAt: Date.now() })
    await inRedis(() => this.redis.set(key, value, 'EX', this.options.cacheTtlSeconds))
    return join(scopes)
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

function join(scopes: string[]): string | undefined {
  return scopes.length > 0 ? scopes.join(' ') : undefined
}
