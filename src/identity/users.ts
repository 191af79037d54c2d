// Users and the external identities linked to them. An identity is keyed by the
// provider's stable subject (provider, subject), never by email (OIDC Core §5.7).

import type { AccountEvents } from '../events/account-events.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import { IdentityAlreadyLinked, InvalidToken, LastIdentity, NotFound, ProviderAlreadyLinked } from '../common/errors.js'
import { randomId } from '../common/secrets.js'
import { inDatabase, type Database, type RunSql } from '../storage/database.js'
import { providerCleanupJob } from './provider-cleanup.js'

export interface ExternalIdentity {
  provider: string
  subject: string
}

/** An identity as it is linked: who the provider says it is, and what we keep of it. */
export interface IdentityToLink extends ExternalIdentity {
  /** The address the provider vouched for. */
  email?: string
  /** The provider grant, encrypted (grant-vault.ts), kept for revocation at deletion. */
  sealedGrant?: string
}

/** One identity of a user, as the user sees it. */
export interface LinkedIdentity {
  id: string
  provider: string
  linkedAt: string
  email?: string
}

export interface NewUserProfile {
  nickname: string
  email?: string
  photo?: string
}

/** What clients may see of a user; `id` is the opaque public id, never the database key. */
export interface PublicUser {
  id: string
  nickname: string
  email?: string
  photo?: string
}

export interface UserWithIdentities extends PublicUser {
  identities: LinkedIdentity[]
}

type UserRow = Parameters<typeof toPublicUser>[0]

// The user an identity is linked to, with the scopes their roles grant on one resource
// (distinct and sorted, as UserScopes reads them): plain SQL, since every returning login waits on it.
const RETURNING_USER = {
  name: 'returning-user',
  text: `SELECT u.public_id AS "publicId", u.nickname, u.email, u.photo,
    ARRAY(SELECT DISTINCT rs.scope FROM user_roles ur JOIN role_scopes rs ON rs.role_id = ur.role_id
          WHERE ur.user_id = u.id AND rs.resource = $3 ORDER BY rs.scope) AS scopes
    FROM users u JOIN identities i ON i.user_id = u.id WHERE i.provider = $1 AND i.subject = $2`,
}

/** A user logging in again: who they are, and what their roles grant on the resource of the login. */
export interface ReturningUser {
  user: PublicUser
  scopes: string[]
}

export class UserDirectory {
  private readonly prisma: PrismaClient
  private readonly sql: RunSql

  constructor(
    database: Pick<Database, 'prisma' | 'sql'>,
    /** The app hears of new users and of identities linked and unlinked, in the same transaction. */
    private readonly events: Pick<AccountEvents, 'rows' | 'enabled'>,
  ) {
    ;({ prisma: this.prisma, sql: this.sql } = database)
  }

  async findByIdentity(identity: ExternalIdentity): Promise<PublicUser | undefined> {
    const user = await inDatabase(() =>
      this.prisma.user.findFirst({
        where: { identities: { some: { provider: identity.provider, subject: identity.subject } } },
        select: { publicId: true, nickname: true, email: true, photo: true },
      }),
    )
    return user ? toPublicUser(user) : undefined
  }

  /** The user an identity is linked to, with their scopes on `resource`, in one round trip (every returning login waits on it). */
  async findReturning(identity: ExternalIdentity, resource: string): Promise<ReturningUser | undefined> {
    const [row] = await inDatabase(() => this.sql<UserRow & { scopes: string[] }>({ ...RETURNING_USER, values: [identity.provider, identity.subject, resource] }))
    return row ? { user: toPublicUser(row), scopes: row.scopes } : undefined
  }

  /**
   * Creates the user with the identity (a nested create) and its user.created event in one
   * transaction, so a failure never leaves a user without its identity.
   * Throws IdentityAlreadyLinked when the identity got an account meanwhile.
   */
  async createWithIdentity(profile: NewUserProfile, identity: IdentityToLink): Promise<PublicUser> {
    const publicId = randomId()
    const create = (db: Pick<PrismaClient, 'user'>) =>
      db.user.create({
        data: {
          publicId,
          nickname: profile.nickname,
          email: profile.email ?? null,
          photo: profile.photo ?? null,
          identities: { create: identityRow(identity) },
        },
        include: { identities: { select: { publicId: true } } },
      })
    try {
      const user = await inDatabase(() =>
        !this.events.enabled
          ? create(this.prisma)
          : this.prisma.$transaction(async (tx) => {
              const created = await create(tx)
              const [row] = this.events.rows('user.created', { userId: publicId, provider: identity.provider, identityId: created.identities[0]!.publicId })
              await tx.job.create({ data: row! })
              return created
            }),
      )
      return toPublicUser(user)
    } catch (error) {
      if ((error as { code?: unknown }).code === 'P2002') {
        throw new IdentityAlreadyLinked('this identity is already linked to an account', { cause: error })
      }
      throw error
    }
  }

  async findWithIdentities(publicId: string): Promise<UserWithIdentities | undefined> {
    const user = await inDatabase(() =>
      this.prisma.user.findUnique({ where: { publicId }, include: { identities: { select: IDENTITY_FIELDS, orderBy: { linkedAt: 'asc' } } } }),
    )
    if (!user) return undefined
    return { ...toPublicUser(user), identities: user.identities.map(toLinkedIdentity) }
  }

  /** The user's identities, oldest first. */
  async identitiesOf(publicId: string): Promise<LinkedIdentity[]> {
    const identities = await inDatabase(() =>
      this.prisma.identity.findMany({ where: { user: { publicId } }, select: IDENTITY_FIELDS, orderBy: { linkedAt: 'asc' } }),
    )
    return identities.map(toLinkedIdentity)
  }

  /** Keeps the newest provider grant of an identity that logged in again (Apple hands a new one per code). */
  async replaceGrant(identity: ExternalIdentity, sealedGrant: string): Promise<void> {
    await inDatabase(() =>
      this.prisma.identity.update({ where: { provider_subject: { provider: identity.provider, subject: identity.subject } }, data: { sealedGrant } }),
    )
  }

  /**
   * Links another identity to the user. The unique keys decide races: of two users linking
   * one identity exactly one gets it, and a user never holds two of one provider.
   * Throws IdentityAlreadyLinked (someone else's) or ProviderAlreadyLinked (the user has one).
   */
  async link(userPublicId: string, identity: IdentityToLink): Promise<LinkedIdentity> {
    const user = await inDatabase(() => this.prisma.user.findUnique({ where: { publicId: userPublicId }, select: { id: true } }))
    if (!user) throw new InvalidToken('the user of this access token no longer exists')
    try {
      const linked = await inDatabase(() =>
        this.prisma.$transaction(async (tx) => {
          const created = await tx.identity.create({ data: { ...identityRow(identity), userId: user.id }, select: IDENTITY_FIELDS })
          const event = this.events.rows('identity.linked', { userId: userPublicId, identityId: created.publicId, provider: created.provider })
          if (event.length > 0) await tx.job.createMany({ data: event })
          return created
        }),
      )
      return toLinkedIdentity(linked)
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'P2002') throw error
      const owner = await inDatabase(() =>
        this.prisma.identity.findUnique({ where: { provider_subject: { provider: identity.provider, subject: identity.subject } }, select: { userId: true } }),
      )
      if (owner && owner.userId !== user.id) throw new IdentityAlreadyLinked('this identity belongs to another account', { cause: error })
      throw new ProviderAlreadyLinked(`this account already has a ${identity.provider} identity`, { cause: error })
    }
  }

  /**
   * Unlinks one of the user's identities, never the last: the user row is locked first, so
   * two parallel unlinks of a user's two identities cannot both see "one left over". The
   * provider's cleanup job (and the app's event) is written in the same transaction.
   * Returns the unlinked identity's provider.
   */
  async unlink(userPublicId: string, identityPublicId: string): Promise<string> {
    return inDatabase(() =>
      this.prisma.$transaction(async (tx) => {
        const [user] = await tx.$queryRaw<{ id: bigint }[]>`SELECT id FROM users WHERE public_id = ${userPublicId} FOR UPDATE`
        if (!user) throw new InvalidToken('the user of this access token no longer exists')
        const identities = await tx.identity.findMany({ where: { userId: user.id }, select: { publicId: true, provider: true, subject: true, sealedGrant: true } })
        const target = identities.find((identity) => identity.publicId === identityPublicId)
        if (!target) throw new NotFound('this account has no identity with that id')
        if (identities.length === 1) throw new LastIdentity('the only identity of an account cannot be unlinked; link another one first')
        await tx.identity.delete({ where: { publicId: identityPublicId } })
        // The provider hears of it too: our app's link there ends, and the grant we kept is revoked.
        const jobs = [providerCleanupJob(userPublicId, target), ...this.events.rows('identity.unlinked', { userId: userPublicId, identityId: identityPublicId, provider: target.provider, by: 'user' })]
        await tx.job.createMany({ data: jobs })
        return target.provider
      }),
    )
  }
}

const IDENTITY_FIELDS = { publicId: true, provider: true, linkedAt: true, email: true } as const

function identityRow(identity: IdentityToLink) {
  return { provider: identity.provider, subject: identity.subject, email: identity.email ?? null, sealedGrant: identity.sealedGrant ?? null }
}

function toLinkedIdentity(identity: { publicId: string; provider: string; linkedAt: Date; email: string | null }): LinkedIdentity {
  return {
    id: identity.publicId,
    provider: identity.provider,
    linkedAt: identity.linkedAt.toISOString(),
    ...(identity.email ? { email: identity.email } : {}),
  }
}

function toPublicUser(user: { publicId: string; nickname: string; email: string | null; photo: string | null }): PublicUser {
  return {
    id: user.publicId,
    nickname: user.nickname,
    ...(user.email ? { email: user.email } : {}),
    ...(user.photo ? { photo: user.photo } : {}),
  }
}
