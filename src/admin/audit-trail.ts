// What operators read of the audit trail: a user's newest events, shaped for display.
// The trail never holds token values, so nothing needs masking here.

import type { AuditLog } from '../audit/audit-log.js'
import { NotFound } from '../common/errors.js'
import type { UserDirectory } from '../identity/users.js'
import { inDatabase } from '../storage/database.js'

export interface AuditRecord {
  at: string
  action: string
  sessionId?: string
  actor: string
  outcome: string
  ip?: string
  userAgent?: string
  target?: string
  detail?: string
}

export const MAX_AUDIT_EVENTS = 500

export class AuditTrail {
  constructor(
    private readonly users: Pick<UserDirectory, 'findWithIdentities'>,
    private readonly audit: Pick<AuditLog, 'forUser'>,
  ) {}

  /** The user's newest events first; NotFound for a user that does not exist. */
  async ofUser(userId: string, limit = 100): Promise<AuditRecord[]> {
    if (!(await this.users.findWithIdentities(userId))) throw new NotFound(`no user "${userId}"`)
    const events = await inDatabase(() => this.audit.forUser(userId, Math.min(Math.max(1, limit), MAX_AUDIT_EVENTS)))
    return events.map((event) => ({
      at: event.at.toISOString(),
      action: event.action,
      ...(event.sessionId ? { sessionId: event.sessionId } : {}),
      actor: event.actor,
      outcome: event.outcome,
      ...(event.ip ? { ip: event.ip } : {}),
      ...(event.userAgent ? { userAgent: event.userAgent } : {}),
      ...(event.target ? { target: event.target } : {}),
      ...(event.detail ? { detail: event.detail } : {}),
    }))
  }
}
