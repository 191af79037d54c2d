// Account events for the app (WEBHOOK_URL): what happened to an account, announced through
// the job queue. An event caused by a database change is a row of the same transaction, so
// the app hears of every change that happened and of none that did not; sessions live in
// Redis, so their event is written right after they end.

import { randomBytes } from 'node:crypto'
import type { JobQueue, JobRow } from '../jobs/job-queue.js'

export const ACCOUNT_EVENT = 'account.event'

export type AccountEventType = 'user.created' | 'user.deleted' | 'identity.linked' | 'identity.unlinked' | 'sessions.revoked'

/** Why every session of a user ended, as `sessions.revoked` tells the app. */
export type SessionsRevokedReason = 'logout_all' | 'forced_logout' | 'refresh_token_reuse' | 'provider_revoked'

/** What an event says; ids only, never a name or an address: the app looks up what it keeps. */
export interface AccountEventData {
  userId: string
  identityId?: string
  provider?: string
  /** user.deleted, identity.unlinked: who did it. */
  by?: 'user' | 'operator' | 'provider'
  /** sessions.revoked: why. */
  reason?: SessionsRevokedReason
}

/** The job's payload: the message id stays the same on every retry (Standard Webhooks' webhook-id). */
export interface AccountEvent {
  id: string
  type: AccountEventType
  timestamp: string
  data: AccountEventData
}

export interface AccountEventLog {
  warn(object: unknown, message: string): void
}

export class AccountEvents {
  constructor(
    /** False without WEBHOOK_URL: no event is written at all. */
    readonly enabled: boolean,
    private readonly queue: JobQueue,
    private readonly log: AccountEventLog,
  ) {}

  /** The row announcing an event, to write in the transaction of the change; none without a webhook. */
  rows(type: AccountEventType, data: AccountEventData): JobRow[] {
    if (!this.enabled) return []
    const event: AccountEvent = { id: `msg_${randomBytes(16).toString('base64url')}`, type, timestamp: new Date().toISOString(), data }
    return [{ kind: ACCOUNT_EVENT, payload: JSON.stringify(event) }]
  }

  /** For a change outside the database: written after it, and a failure to write never undoes the change. */
  async announce(type: AccountEventType, data: AccountEventData): Promise<void> {
    try {
      await this.queue.add(this.rows(type, data))
    } catch (error) {
      this.log.warn({ event: type, userId: data.userId, err: { message: (error as Error).message } }, 'account event not stored')
    }
  }
}

/** For tools that change no account (the admin CLI's lookups): no event is ever written. */
export const NO_ACCOUNT_EVENTS: Pick<AccountEvents, 'rows' | 'enabled'> = { enabled: false, rows: () => [] }
