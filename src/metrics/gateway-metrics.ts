// The gateway's Prometheus series, in a registry of its own (never prom-client's global
// one: two gateways in one process, as in the tests, count apart). The domain modules only
// know the small observer interfaces they declare (LoginObserver, AuditObserver,
// ProviderCallObserver); the HTTP layer, RequestObserver and RefusalObserver. This class
// implements them all and is handed to each at start-up (gateway.ts).
//
// Labels are bounded, so a caller cannot grow the series: provider names come from the
// configuration (anything else is `unknown`), error codes from the contract's own codes or
// the provider adapters' closed lists, routes from the router's patterns (never the URL,
// so no query string, code or id). No label ever carries a user id, a session id, a token
// or an address.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ProviderCall, ProviderCallObserver } from '../../providers/provider-http.js'
import type { AuditEntry, AuditObserver, RefreshOutcome } from '../audit/audit-log.js'
import type { RefusalObserver } from '../http/errors.js'
import type { FinishedRequest, RequestObserver } from '../http/metrics.js'
import type { LoginEnding, LoginObserver } from '../login/login.js'

/** Why a session ended; `expired` is not among them: Redis lets a session lapse without telling anyone. */
export const SESSION_END_CAUSES = ['logout', 'logout_all', 'forced', 'evicted', 'reuse'] as const
type SessionEndCause = (typeof SESSION_END_CAUSES)[number]

export const REFRESH_OUTCOMES = ['rotated', 'grace', 'reuse_detected', 'invalid', 'limited', 'unavailable'] as const

/** A queued job's attempt, as the audit trail records it (job.delivered, job.failed, job.abandoned). */
const JOB_OUTCOMES: Record<string, string> = { 'job.delivered': 'delivered', 'job.failed': 'failed', 'job.abandoned': 'abandoned' }

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])
/** The contract's error codes are snake_case words; anything else (never expected) is `other`. */
const ERROR_CODE = /^[a-z][a-z_]{0,39}$/

export interface GatewayMetricsOptions {
  /** The enabled providers: the only provider label values besides `unknown`. */
  providers: readonly string[]
}

export class GatewayMetrics implements LoginObserver, AuditObserver, ProviderCallObserver, RequestObserver, RefusalObserver {
  readonly registry = new Registry()
  private readonly providers: ReadonlySet<string>

  private readonly logins: Counter<'provider' | 'outcome' | 'error'>
  private readonly providerCalls: Histogram<'provider' | 'endpoint'>
  private readonly providerErrors: Counter<'provider' | 'endpoint' | 'code'>
  private readonly refreshes: Counter<'outcome'>
  private readonly sessionEnds: Counter<'cause'>
  /**
   * Requests are tallied here and handed to prom-client only when scraped: every request
   * passes through requestFinished, and a plain Map increment costs a fraction of what
   * prom-client's per-call label validation and hashing do (about 1 % of a refresh).
   */
  private readonly requestTallies = new Map<string, { labels: Record<'method' | 'route' | 'status', string>; count: number }>()
  private readonly refusals: Counter<'status' | 'cause'>
  private readonly jobAttempts: Counter<'outcome'>
  private readonly redisDataLosses: Counter

  constructor(options: GatewayMetricsOptions) {
    this.providers = new Set(options.providers)
    const registers = [this.registry]
    this.logins = new Counter({
      name: 'gateway_logins_total',
      help: 'Logins that reached the login service, by provider and outcome (authenticated, signup_required, refused, unavailable); error is the contract error code of a refusal',
      labelNames: ['provider', 'outcome', 'error'],
      registers,
    })
    this.providerCalls = new Histogram({
      name: 'gateway_provider_request_duration_seconds',
      help: 'HTTP calls to identity providers, by provider and endpoint kind (discovery, token, userinfo, token_info, jwks, revocation, unlink, other)',
      labelNames: ['provider', 'endpoint'],
      // PROVIDER_HTTP_TIMEOUT is at most 30 s.
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    this.providerErrors = new Counter({
      name: 'gateway_provider_errors_total',
      help: "Provider calls that failed, by the provider's error code (KOE codes, OAuth error values, kapi and Naver codes; unknown codes are other) or timeout, unreachable, oversized, http_4xx, http_5xx",
      labelNames: ['provider', 'endpoint', 'code'],
      registers,
    })
    this.refreshes = new Counter({
      name: 'gateway_refreshes_total',
      help: 'Refresh token presentations, by outcome (rotated, grace, reuse_detected, invalid, limited, unavailable)',
      labelNames: ['outcome'],
      registers,
    })
    this.sessionEnds = new Counter({
      name: 'gateway_session_ends_total',
      help: 'Session endings by cause (logout, logout_all, forced, evicted, reuse); logout_all and forced count once per request, however many sessions they ended',
      labelNames: ['cause'],
      registers,
    })
    const requestTallies = this.requestTallies
    // Read from the tallies at each scrape; the registry holds it.
    new Counter({
      name: 'gateway_http_requests_total',
      help: 'HTTP requests on the public port, by method, route pattern (unmatched: no route) and status',
      labelNames: ['method', 'route', 'status'],
      registers,
      collect() {
        this.reset()
        for (const { labels, count } of requestTallies.values()) this.inc(labels, count)
      },
    })
    this.refusals = new Counter({
      name: 'gateway_http_refusals_total',
      help: 'Requests refused with 429 (cause: the rate budget, login or token per address, refresh per session) or 503 (cause: storage)',
      labelNames: ['status', 'cause'],
      registers,
    })
    this.jobAttempts = new Counter({
      name: 'gateway_job_attempts_total',
      help: 'Attempts at queued jobs (provider cleanups, account events) in this instance, by outcome (delivered, failed and to be retried, abandoned)',
      labelNames: ['outcome'],
      registers,
    })
    this.redisDataLosses = new Counter({
      name: 'gateway_redis_data_lost_total',
      help: 'Times this instance found that Redis had lost its data (every session with it): a server without persistence restarted, Sentinel promoted an empty one, or a Cluster master came back empty before its replica took over',
      registers,
    })
    // Series that exist from the start, so a rate() sees their first increase.
    for (const outcome of Object.values(JOB_OUTCOMES)) this.jobAttempts.inc({ outcome }, 0)
    for (const outcome of REFRESH_OUTCOMES) this.refreshes.inc({ outcome }, 0)
    for (const cause of SESSION_END_CAUSES) this.sessionEnds.inc({ cause }, 0)
    for (const provider of this.providers) {
      for (const outcome of ['authenticated', 'signup_required'] as const) this.logins.inc({ provider, outcome, error: '' }, 0)
    }
    collectDefaultMetrics({ register: this.registry })
  }

  /**
   * The queue depth: jobs waiting in the database (all instances'), by kind, read at each
   * scrape. A scrape during a database outage leaves the gauge out rather than failing.
   */
  watchQueue(waiting: () => Promise<Record<string, number>>): void {
    new Gauge({
      name: 'gateway_jobs_waiting',
      help: 'Jobs waiting in the queue (due, retrying or being delivered), by kind (provider.cleanup, account.event)',
      labelNames: ['kind'],
      registers: [this.registry],
      async collect() {
        this.reset()
        const byKind = await waiting().catch(() => ({}))
        for (const [kind, count] of Object.entries(byKind)) this.set({ kind }, count)
      },
    })
  }

  /**
   * When the client certificate the gateway shows Redis stops being valid, as renewed last:
   * read at each scrape, for an alert well before it (redis-tls-expiry.ts).
   */
  watchRedisClientCertificate(notAfter: () => Date | undefined): void {
    new Gauge({
      name: 'gateway_redis_tls_client_certificate_expiry_timestamp_seconds',
      help: 'When the client certificate shown to Redis (REDIS_TLS_CERT_FILE, as last renewed) expires, in seconds since the epoch',
      registers: [this.registry],
      collect() {
        const expiry = notAfter()
        if (expiry) this.set(expiry.getTime() / 1000)
      },
    })
  }

  /** What a scrape of /metrics answers. */
  render(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  loginFinished(provider: string, ending: LoginEnding): void {
    const labels = { provider: this.providerLabel(provider), outcome: '', error: '' }
    if (typeof ending === 'string') labels.outcome = ending
    else if (ending.refused === 'unavailable') labels.outcome = 'unavailable'
    else Object.assign(labels, { outcome: 'refused', error: errorLabel(ending.refused) })
    this.logins.inc(labels)
  }

  providerCalled(call: ProviderCall): void {
    const provider = this.providerLabel(call.provider)
    this.providerCalls.observe({ provider, endpoint: call.endpoint }, call.seconds)
    if (call.error !== undefined) this.providerErrors.inc({ provider, endpoint: call.endpoint, code: call.error })
  }

  recorded(event: Pick<AuditEntry, 'action' | 'actor' | 'outcome'>): void {
    const cause = sessionEndCause(event)
    if (cause) this.sessionEnds.inc({ cause })
    if (event.action === 'session.reuse_detected') this.refreshes.inc({ outcome: 'reuse_detected' })
    const jobOutcome = JOB_OUTCOMES[event.action]
    if (jobOutcome) this.jobAttempts.inc({ outcome: jobOutcome })
  }

  refreshed(outcome: RefreshOutcome): void {
    this.refreshes.inc({ outcome })
  }

  requestFinished({ method, route, status }: FinishedRequest): void {
    const known = METHODS.has(method) ? method : 'other'
    const key = `${known} ${status} ${route ?? ''}`
    const tally = this.requestTallies.get(key)
    if (tally) tally.count += 1
    else this.requestTallies.set(key, { labels: { method: known, route: route ?? 'unmatched', status: String(status) }, count: 1 })
  }

  refused(status: 429 | 503, cause: string): void {
    this.refusals.inc({ status: String(status), cause })
  }

  redisDataLost(): void {
    this.redisDataLosses.inc()
  }

  private providerLabel(name: string): string {
    return this.providers.has(name) ? name : 'unknown'
  }
}

function errorLabel(code: string): string {
  return ERROR_CODE.test(code) ? code : 'other'
}

/**
 * The audit trail's session events as causes. Its actors are "user", "system" (the gateway
 * itself: a new login ending others under SESSION_POLICY=single) or an operator's id.
 */
function sessionEndCause({ action, actor }: Pick<AuditEntry, 'action' | 'actor'>): SessionEndCause | undefined {
  switch (action) {
    case 'session.ended':
      return actor === 'user' ? 'logout' : actor === 'system' ? 'evicted' : 'forced'
    case 'session.evicted':
      return 'evicted'
    case 'session.reuse_detected':
      return 'reuse'
    case 'sessions.ended_all':
      return actor === 'user' ? 'logout_all' : 'forced'
    default:
      return undefined
  }
}
