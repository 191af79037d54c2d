// A provider tells us about one of its users. When the user walked away from our app there
// (Kakao's unlink callback, Apple's consent-revoked and account-delete) the identity is
// unlinked and every session of its user ends; for the user's only identity
// LAST_IDENTITY_REVOKED decides: `delete` the account, or `keep` it without identities.
// Apple's email-disabled / email-enabled record whether the relay address still forwards.
// A notice the provider sends once (Apple's jti) is heard once.

import type { AuditLog } from '../audit/audit-log.js'
import type { AccountEvents } from '../events/account-events.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import type { RefreshSessions } from '../sessions/refresh-sessions.js'
import { inDatabase } from '../storage/database.js'
import type { ProviderNotice } from '../../providers/types.js'
import type { UsedIdTokens } from '../login/used-id-tokens.js'
import type { AccountDeletion } from './account-deletion.js'

export type LastIdentityRevoked = 'delete' | 'keep'

/** What a revocation did: nothing (an identity we do not know), an unlink, or the account's deletion. */
export type RevocationOutcome = 'unknown' | 'unlinked' | 'deleted'
/** What a notice did: a revocation's outcome, a relay-forwarding flag recorded, or nothing. */
export type NoticeOutcome = RevocationOutcome | 'recorded' | 'ignored'

export class ProviderRevocations {
  constructor(
    private readonly deps: {
      prisma: PrismaClient
      sessions: Pick<RefreshSessions, 'endAll'>
      deletion: AccountDeletion
      audit: AuditLog
      /** Remembers notices sent once (their ids), as ID tokens are remembered. */
      usedTokens: Pick<UsedIdTokens, 'reserve'>
      lastIdentityRevoked: LastIdentityRevoked
      events: Pick<AccountEvents, 'rows'>
    },
  ) {}

  async heard(provider: string, notice: ProviderNotice): Promise<NoticeOutcome> {
    const reservation = notice.once && (await this.deps.usedTokens.reserve(`notice:${provider}:${notice.once.id}`, notice.once.expiresAt))
    try {
      const outcome = await this.act(provider, notice)
      await reservation?.spend()
      return outcome
    } catch (error) {
      await reservation?.release().catch(() => {})
      throw error
    }
  }

  private async act(provider: string, notice: ProviderNotice): Promise<NoticeOutcome> {
    switch (notice.event) {
      case 'revoked':
        return this.revoked(provider, notice.subject, notice.reason)
      case 'email-disabled':
      case 'email-enabled': {
        const { count } = await inDatabase(() =>
          this.deps.prisma.identity.updateMany({ where: { provider, subject: notice.subject }, data: { emailForwards: notice.event === 'email-enabled' } }),
        )
        return count === 0 ? 'unknown' : 'recorded'
      }
      case 'ignored':
        return 'ignored'
    }
  }

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
    const event = this.deps.events.rows('identity.unlinked', { userId, identityId: identity.publicId, provider, by: 'provider' })
    await inDatabase(() =>
      this.deps.prisma.$transaction(async (tx) => {
        const { count } = await tx.identity.deleteMany({ where: { provider, subject } })
        if (count > 0 && event.length > 0) await tx.job.createMany({ data: event })
      }),
    )
    await this.deps.sessions.endAll(userId, actor, {}, 'provider_revoked')
    await this.deps.audit.record({ action: 'identity.unlinked', userId, actor, outcome: 'success', target: `identity:${identity.publicId}`, detail: `${provider}: ${reason}` })
    return 'unlinked'
  }
}
