// A provider tells us a user walked away from our app there (Kakao's unlink callback; next,
// Apple's consent-revoked and account-delete notifications). The identity is unlinked and
// every session of its user ends. For the user's only identity LAST_IDENTITY_REVOKED
// decides: `delete` the account, or `keep` it without identities.

import type { AuditLog } from '../audit/audit-log.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import type { RefreshSessions } from '../sessions/refresh-sessions.js'
import { inDatabase } from '../storage/database.js'
import type { AccountDeletion } from './account-deletion.js'

export type LastIdentityRevoked = 'delete' | 'keep'

/** What a revocation did: nothing (an identity we do not know), an unlink, or the account's deletion. */
export type RevocationOutcome = 'unknown' | 'unlinked' | 'deleted'

export class ProviderRevocations {
  constructor(
    private readonly deps: {
      prisma: PrismaClient
      sessions: Pick<RefreshSessions, 'endAll'>
      deletion: AccountDeletion
      audit: AuditLog
      lastIdentityRevoked: LastIdentityRevoked
    },
  ) {}

  async revoked(provider: string, subject: string, reason: string): Promise<RevocationOutcome> {
    const actor = `provider:${provider}`
    const identity = await inDatabase(() =>
      this.deps.prisma.identity.findUnique({
        where: { provider_subject: { provider, subject } },
        select: { publicId: true, user: { select: { publicId: true, _count: { select: { identities: true } } } } },
      }),
    )
    if (!identity) return 'unknown'
    const userId = identity.user.publicId
    if (identity.user._count.identities === 1 && this.deps.lastIdentityRevoked === 'delete') {
      await this.deps.deletion.delete(userId, actor, provider)
      return 'deleted'
    }
    // deleteMany: a second callback for the same identity finds nothing to delete, and that is fine.
    await inDatabase(() => this.deps.prisma.identity.deleteMany({ where: { provider, subject } }))
    await this.deps.sessions.endAll(userId, actor, {})
    await this.deps.audit.record({ action: 'identity.unlinked', userId, actor, outcome: 'success', target: `identity:${identity.publicId}`, detail: `${provider}: ${reason}` })
    return 'unlinked'
  }
}
