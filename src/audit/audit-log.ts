// The audit trail of session changes (ASVS 16.3): who, what, when, from where, and whether
// it was allowed. Kept in the database so it outlives Redis and the process. Token values
// never enter it. A failed write never blocks the change it describes (a logout must still
// log you out): it is reported in the service log instead.

import { StorageUnavailable } from '../common/errors.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import type { Database, RunSql } from '../storage/database.js'

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
  /** Operators' changes to clients and roles (target: "client:<id>", "role:<name>"). */
  | 'client.created'
  | 'client.deleted'
  | 'client.granted'
  | 'client.revoked'
  | 'clients.listed'
  | 'role.created'
  | 'role.deleted'
  | 'role.granted'
  | 'role.revoked'
  | 'roles.listed'
  /** An operator was shown a user's record, roles or audit trail (detail: which, and how the user was found). */
  | 'user.viewed'
  /** A user linked another provider identity (target: "identity:<id>", detail: the provider), or was refused. */
  | 'identity.linked'
  | 'identity.unlinked'
  /** An account was deleted (actor: "user" or the operator); its other rows lose their addresses. */
  | 'user.deleted'
  /** An operator's search for users that found nobody (detail: by what, never the value searched). */
  | 'users.searched'
  /** A queued job (a provider's unlink or revocation, an event for the app) was done, failed and will be retried, or was given up (target: "job:<id>"). */
  | 'job.delivered'
  | 'job.failed'
  | 'job.abandoned'

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
  /** `failed`: the gateway could not do it (a job whose provider or receiver failed). */
  outcome: 'success' | 'denied' | 'failed'
  /** What the action was about besides a user: "client:<id>", "role:<name>", "identity:<id>". */
  target?: string
  /** The particulars, e.g. "https://orders.example: read:order". Never a secret. */
  detail?: string
}

export interface AuditWarnings {
  warn(object: unknown, message: string): void
}

/**
 * How a refresh ended, when it is counted rather than stored (a row per refresh would be
 * most of the table). A detected reuse is not among them: it has its own audit event.
 */
export type RefreshOutcome = 'rotated' | 'grace' | 'limited' | 'invalid' | 'unavailable'

/** Hears of every audited event and counted refresh (the metrics); sees no user, session or address. */
export interface AuditObserver {
  recorded(event: Pick<AuditEntry, 'action' | 'actor' | 'outcome'>): void
  refreshed(outcome: RefreshOutcome): void
}

const INSERT_EVENT = {
  name: 'audit-event',
  text: 'INSERT INTO audit_events (at, action, user_id, session_id, actor, ip, user_agent, outcome, target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id',
}

const MARK_FAILED = {
  name: 'audit-event-failed',
  text: "UPDATE audit_events SET outcome = 'failed', detail = $2, ip = CASE WHEN $3 THEN NULL ELSE ip END, user_agent = CASE WHEN $3 THEN NULL ELSE user_agent END WHERE id = $1",
}

/** The row of an event written while the event happens: begin() */
export interface AuditInProgress {
  /**
   * Resolves once the insert is on its way: PostgreSQL's pool hands it an idle connection on
   * the next tick, so work started before this resolves (a Redis write, a signature) would
   * take the thread first and hold the row, a login's slowest write, back.
   */
  sent: Promise<void>
  /** Resolves when the row is written (or could not be, which is logged). */
  done: Promise<void>
  /** The event did not happen after all: its row says `failed`, with why; `forgetOrigin` drops its address and User-Agent. */
  failed(detail: string, options?: { forgetOrigin?: boolean }): Promise<void>
}

export class AuditLog {
  private readonly anonymous: AnonymousRefusals

  private readonly prisma: PrismaClient
  private readonly sql: RunSql

  constructor(
    database: Pick<Database, 'prisma' | 'sql'>,
    private readonly log: AuditWarnings,
    private readonly observer?: AuditObserver,
  ) {
    ;({ prisma: this.prisma, sql: this.sql } = database)
    this.anonymous = new AnonymousRefusals(log)
  }

  async record(entry: AuditEntry): Promise<void> {
    // Heard before the write: the event happened even if its row cannot be stored.
    this.heard(entry)
    await this.insert(entry)
  }

  /**
   * Writes the row of an event that is happening now (a session being stored), so that
   * the write need not wait for it; `failed` turns the row into a failed attempt if the
   * event did not happen. The metrics hear the event once its outcome is known.
   */
  begin(entry: AuditEntry): AuditInProgress {
    const id = this.insert(entry)
    let settled = false
    const settle = (outcome: AuditEntry['outcome']) => {
      if (!settled) this.heard({ ...entry, outcome })
      settled = true
    }
    return {
      sent: new Promise((resolve) => process.nextTick(resolve)),
      done: id.then(() => settle(entry.outcome)),
      failed: async (detail, options) => {
        settle('failed')
        const row = await id
        if (row === undefined) return
        try {
          await this.sql({ ...MARK_FAILED, values: [row, detail, options?.forgetOrigin === true] })
        } catch (error) {
          this.log.warn({ audit: { ...entry, outcome: 'failed', detail }, err: { message: (error as Error).message } }, 'audit event not marked failed')
        }
      },
    }
  }

  private heard({ action, actor, outcome }: AuditEntry): void {
    this.observer?.recorded({ action, actor, outcome })
  }

  /** The new row's id; undefined when it could not be stored (logged, never thrown). */
  private async insert(entry: AuditEntry): Promise<string | undefined> {
    try {
      // Plain SQL: every login and logout waits on this insert.
      const { action, userId, sessionId, actor, ip, userAgent, outcome, target, detail } = entry
      const [row] = await this.sql<{ id: string }>({
        ...INSERT_EVENT,
        // `at` is UTC without a zone, as Prisma writes it (the column is TIMESTAMP(3)).
        values: [new Date().toISOString(), action, userId ?? null, sessionId ?? null, actor, ip ?? null, userAgent?.slice(0, 200) ?? null, outcome, target ?? null, detail?.slice(0, 500) ?? null],
      })
      return String(row!.id)
    } catch (error) {
      this.log.warn({ audit: entry, err: { message: (error as Error).message } }, 'audit event not stored')
      return undefined
    }
  }

  /**
   * A refusal of a caller who showed no credential we could verify (none, malformed, forged,
   * expired): counted per address and logged at most once a minute, never a row. Only
   * attempts by a known party are worth a row each (ASVS 16.3.2); one per anonymous request
   * would let anyone grow the table as fast as they can send.
   */
  countAnonymous(entry: Pick<AuditEntry, 'action' | 'ip'>): void {
    this.anonymous.count(entry.action, entry.ip)
  }

  /** A refresh's outcome: counted for the metrics, never a row. */
  countRefresh(outcome: RefreshOutcome): void {
    this.observer?.refreshed(outcome)
  }

  /** For a rotation's `.catch`: counts a storage outage as `unavailable`, then rethrows whatever failed. */
  readonly countRefreshFailure = (error: unknown): never => {
    if (error instanceof StorageUnavailable) this.countRefresh('unavailable')
    throw error
  }

  /** The newest events about a user, for operators. */
  forUser(userId: string, limit = 100) {
    return this.prisma.auditEvent.findMany({ where: { userId }, orderBy: { id: 'desc' }, take: limit })
  }
}

export interface AnonymousRefusalOptions {
  /** How long one address's refusals are summed into one log line; default a minute. */
  windowMs?: number
  /** Addresses tracked at once; beyond it they share one tally, so memory stays bounded. Default 1000. */
  maxAddresses?: number
  now?: () => number
}

/** Where the addresses beyond `maxAddresses` are counted together. */
export const OTHER_ADDRESSES = 'other addresses'

/**
 * Anonymous refusals, tallied by action and address. The first refusal of a window is
 * logged at once (a single probe is seen); the rest of the window is summed into one line
 * when it closes. So each tally logs at most once per window and there are at most
 * `maxAddresses + 1` tallies: both the memory and the log volume are bounded, however many
 * requests or addresses an attacker has.
 */
export class AnonymousRefusals {
  /** In the order their windows opened, so the expired ones are always at the front. */
  private readonly tallies = new Map<string, { action: AuditAction; ip: string; openedAt: number; unlogged: number }>()
  private readonly windowMs: number
  private readonly maxAddresses: number
  private readonly now: () => number
  /** Closes the oldest window when it ends even if no refusal follows, so the last count is not lost. */
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly log: AuditWarnings,
    options: AnonymousRefusalOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 60_000
    this.maxAddresses = options.maxAddresses ?? 1000
    this.now = options.now ?? Date.now
  }

  count(action: AuditAction, ip = 'unknown'): void {
    const now = this.now()
    this.closeWindows(now)
    const own = `${action} ${ip}`
    const key = this.tallies.has(own) || this.tallies.size < this.maxAddresses ? own : `${action} ${OTHER_ADDRESSES}`
    const tally = this.tallies.get(key)
    if (tally) {
      tally.unlogged += 1
      return
    }
    const address = key === own ? ip : OTHER_ADDRESSES
    this.tallies.set(key, { action, ip: address, openedAt: now, unlogged: 0 })
    this.warn(action, address, 1)
    this.schedule()
  }

  /** Tracked at the moment (for tests and metrics). */
  get size(): number {
    return this.tallies.size
  }

  /** Logs what expired windows counted since their first line; a tally that counted more opens a new window. */
  private closeWindows(now: number): void {
    for (const [key, tally] of this.tallies) {
      if (now - tally.openedAt < this.windowMs) return
      this.tallies.delete(key)
      if (tally.unlogged === 0) continue
      this.warn(tally.action, tally.ip, tally.unlogged)
      // Re-inserted at the back with a fresh window: the loop ends when it reaches it.
      this.tallies.set(key, { ...tally, openedAt: now, unlogged: 0 })
    }
  }

  private schedule(): void {
    const oldest = this.tallies.values().next().value
    if (this.timer !== undefined || oldest === undefined) return
    const closing = () => {
      this.timer = undefined
      this.closeWindows(this.now())
      this.schedule()
    }
    // unref: a pending summary never keeps the process alive.
    this.timer = setTimeout(closing, Math.max(0, oldest.openedAt + this.windowMs - this.now())).unref()
  }

  private warn(action: AuditAction, ip: string, count: number): void {
    this.log.warn({ audit: { action, outcome: 'denied', actor: 'anonymous', ip, count } }, 'refused without a valid credential: counted since the last line, not stored')
  }
}
