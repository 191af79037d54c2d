// The audit trail of session changes (ASVS 16.3): who, what, when, from where, and whether
// it was allowed. Kept in the database so it outlives Redis and the process. Token values
// never enter it. A failed write never blocks the change it describes (a logout must still
// log you out): it is reported in the service log instead.

import type { PrismaClient } from '../generated/prisma/client.js'

export type AuditAction =
  | 'session.started'
  | 'session.ended'
  /** A login beyond MAX_SESSIONS_PER_USER ended the least recently used session. */
  | 'session.evicted'
  | 'session.reuse_detected'
  | 'sessions.ended_all'
  | 'admin.denied'
  | 'role.assigned'
  | 'role.unassigned'

/** Where a request came from, for the audit trail. */
export interface RequestOrigin {
  ip?: string
  userAgent?: string
}

export interface AuditEntry extends RequestOrigin {
  action: AuditAction
  userId?: string
  sessionId?: string
  /** "user", "system", or the id of the operator or client that acted. */
  actor: string
  outcome: 'success' | 'denied'
}

export interface AuditWarnings {
  warn(object: unknown, message: string): void
}

export class AuditLog {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly log: AuditWarnings,
  ) {}

  async record(entry: AuditEntry): Promise<void> {
    try {
      await this.prisma.auditEvent.create({ data: { ...entry, userAgent: entry.userAgent?.slice(0, 200) } })
    } catch (error) {
      this.log.warn({ audit: entry, err: { message: (error as Error).message } }, 'audit event not stored')
    }
  }

  /** The newest events about a user, for operators. */
  forUser(userId: string, limit = 100) {
    return this.prisma.auditEvent.findMany({ where: { userId }, orderBy: { id: 'desc' }, take: limit })
  }
}
