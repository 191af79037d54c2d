// Users and the external identities linked to them. An identity is keyed by the
// provider's stable subject (provider, subject), never by email (OIDC Core §5.7).

import type { PrismaClient } from '../generated/prisma/client.js'
import { IdentityAlreadyLinked } from '../errors.js'
import { randomId } from '../secrets.js'
import { inDatabase } from '../storage/database.js'

export interface ExternalIdentity {
  provider: string
  subject: string
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
  identities: { provider: string; linkedAt: string }[]
}

export class UserDirectory {
  constructor(private readonly prisma: PrismaClient) {}

  async findByIdentity(identity: ExternalIdentity): Promise<PublicUser | undefined> {
    const found = await inDatabase(() =>
      this.prisma.identity.findUnique({
        where: { provider_subject: { provider: identity.provider, subject: identity.subject } },
        select: { user: true },
      }),
    )
    return found ? toPublicUser(found.user) : undefined
  }

  /**
   * Creates the user and links the identity in one statement (a nested create is one
   * transaction), so a failure never leaves a user without its identity.
   * Throws IdentityAlreadyLinked when the identity got an account meanwhile.
   */
  async createWithIdentity(profile: NewUserProfile, identity: ExternalIdentity): Promise<PublicUser> {
    try {
      const user = await inDatabase(() =>
        this.prisma.user.create({
          data: {
            publicId: randomId(),
            nickname: profile.nickname,
            email: profile.email ?? null,
            photo: profile.photo ?? null,
            identities: { create: { provider: identity.provider, subject: identity.subject } },
          },
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
      this.prisma.user.findUnique({
        where: { publicId },
        include: { identities: { select: { provider: true, linkedAt: true }, orderBy: { linkedAt: 'asc' } } },
      }),
    )
    if (!user) return undefined
    return {
      ...toPublicUser(user),
      identities: user.identities.map((identity) => ({ provider: identity.provider, linkedAt: identity.linkedAt.toISOString() })),
    }
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
