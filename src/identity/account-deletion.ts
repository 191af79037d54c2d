// Deleting an account, by the user or by an operator: every session ends at once, the
// user and their identities are gone, the audit trail keeps that the account was deleted
// but no address or device of its owner, and the cleanup each provider needs (unlinking,
// revoking the grant we kept) is written as a job in the same transaction, so it happens
// even if the gateway stops right after.

import type { AuditLog } from '../audit/audit-log.js'
import type { AccountEvents } from '../events/account-events.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import type { RefreshSessions } from '../sessions/refresh-sessions.js'
import { inDatabase } from '../storage/database.js'
import { providerCleanupJob } from './provider-cleanup.js'

export class AccountDeletion {
  constructor(
    private readonly deps: {
      prisma: PrismaClient
      sessions: Pick<RefreshSessions, 'endAll' | 'endForDeletedAccount'>
      audit: AuditLog
      events: Pick<AccountEvents, 'rows'>
    },
  ) {}

  /**
   * Deletes the account of `userId` (public id); false when there is none. `actor`: "user",
   * the operator, or the provider. `revokedBy`: the provider that already ended its side
   * (its callback caused this), so no cleanup job is written for it.
   */
  async delete(userId: string, actor: string, revokedBy?: string): Promise<boolean> {
    // An unknown id (an operator's typo) ends and records nothing.
    if (!(await inDatabase(() => this.deps.prisma.user.findUnique({ where: { publicId: userId }, select: { id: true } })))) return false
    // Sessions first: whatever happens next, nobody keeps using this account. No address is
    // recorded for an account that is going away.
    await this.deps.sessions.endAll(userId, actor, {})
    const deleted = await inDatabase(() =>
      this.deps.prisma.$transaction(async (tx) => {
        const user = await tx.user.findUnique({ where: { publicId: userId }, select: { id: true, identities: { select: { provider: true, subject: true, sealedGrant: true } } } })
        if (!user) return false
        const jobs = [
          ...user.identities.filter((identity) => identity.provider !== revokedBy).map((identity) => providerCleanupJob(userId, identity)),
          ...this.deps.events.rows('user.deleted', { userId, by: actor === 'user' ? 'user' : actor.startsWith('provider:') ? 'provider' : 'operator' }),
        ]
        if (jobs.length > 0) await tx.job.createMany({ data: jobs })
        await tx.user.delete({ where: { id: user.id } })
        // The trail stays (what happened, when), without where from or on which device.
        await tx.auditEvent.updateMany({ where: { userId }, data: { ip: null, userAgent: null } })
        return true
      }),
    )
    if (!deleted) return false
    // A login that slipped in between the first end and the delete holds a session of a user
    // who no longer exists: end it too, and refuse one that found the account and has yet to
    // start its session. (Not at the first end: a deletion that fails leaves the account usable.)
    await this.deps.sessions.endForDeletedAccount(userId, actor)
    await this.deps.audit.record({ action: 'user.deleted', userId, actor, outcome: 'success' })
    return true
  }
}
