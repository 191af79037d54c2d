// Finding a user for an operator: by the provider identity a support request names
// (provider + subject, the key identities are stored under) or by email. Email is neither
// unique nor verified by every provider, so it can find several users, and never links
// or merges anything (OIDC Core §5.7): it only shows who is there.

import type { PrismaClient } from '../generated/prisma/client.js'
import { InvalidRequest, NotFound } from '../common/errors.js'
import { inDatabase } from '../storage/database.js'

/** A user as operators see it: the public id, the profile, every identity and role. */
export interface UserRecord {
  id: string
  nickname: string
  email?: string
  photo?: string
  createdAt: Date
  identities: { provider: string; subject: string; linkedAt: Date }[]
  roles: string[]
}

/** Search by email, or by provider and subject: one of the two, never both. */
export interface UserSearch {
  email?: string
  provider?: string
  subject?: string
}

/** How a search found its users, for the audit trail (never the value searched). */
export type SearchKind = 'email' | 'identity'

/** More matches than this for one email is not a lookup any more. */
export const MAX_SEARCH_RESULTS = 50

const RECORD = {
  publicId: true,
  nickname: true,
  email: true,
  photo: true,
  createdAt: true,
  identities: { select: { provider: true, subject: true, linkedAt: true }, orderBy: { linkedAt: 'asc' } },
  roles: { select: { role: { select: { name: true } } }, orderBy: { role: { name: 'asc' } } },
} as const

export class UserLookup {
  constructor(private readonly prisma: PrismaClient) {}

  /** NotFound for an unknown public id. */
  async byId(userId: string): Promise<UserRecord> {
    const user = await inDatabase(() => this.prisma.user.findUnique({ where: { publicId: userId }, select: RECORD }))
    if (!user) throw new NotFound(`no user "${userId}"`)
    return toRecord(user)
  }

  /** The users that match, oldest first; none is an empty list, not an error. */
  async search(criteria: UserSearch): Promise<{ kind: SearchKind; users: UserRecord[] }> {
    const { email, provider, subject } = criteria
    if (email !== undefined && provider === undefined && subject === undefined) {
      if (email.trim() === '') throw new InvalidRequest('the email to search for is empty')
      // Exact, ignoring case: the domain part is case-insensitive and people type either.
      // Not Prisma's `mode: 'insensitive'`, which is an ILIKE: "_" and "%" in the address
      // would match any character.
      const users = await inDatabase(async () => {
        const ids = await this.prisma.$queryRaw<{ id: bigint }[]>`
          SELECT id FROM users WHERE lower(email) = lower(${email.trim()}) ORDER BY id LIMIT ${MAX_SEARCH_RESULTS}`
        if (ids.length === 0) return []
        return await this.prisma.user.findMany({ where: { id: { in: ids.map((row) => row.id) } }, select: RECORD, orderBy: { id: 'asc' } })
      })
      return { kind: 'email', users: users.map(toRecord) }
    }
    if (email === undefined && provider !== undefined && subject !== undefined) {
      const identity = await inDatabase(() =>
        this.prisma.identity.findUnique({ where: { provider_subject: { provider, subject } }, select: { user: { select: RECORD } } }),
      )
      return { kind: 'identity', users: identity ? [toRecord(identity.user)] : [] }
    }
    throw new InvalidRequest('search by email, or by provider and subject')
  }
}

type Row = {
  publicId: string
  nickname: string
  email: string | null
  photo: string | null
  createdAt: Date
  identities: { provider: string; subject: string; linkedAt: Date }[]
  roles: { role: { name: string } }[]
}

function toRecord(user: Row): UserRecord {
  return {
    id: user.publicId,
    nickname: user.nickname,
    ...(user.email ? { email: user.email } : {}),
    ...(user.photo ? { photo: user.photo } : {}),
    createdAt: user.createdAt,
    identities: user.identities,
    roles: user.roles.map((held) => held.role.name),
  }
}
