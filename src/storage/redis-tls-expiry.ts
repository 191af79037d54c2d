// A client certificate that nobody renewed is found out late: Redis checks it only when a
// connection opens, so the gateway runs on its open connections past the expiry and is cut
// off at its next reconnect (a failover, a dropped link), long after anyone could have acted.
// So the certificate in use is watched: its expiry is a metric for alerting (metrics), and
// the gateway warns, every hour or so, once less than a twentieth of its validity is left (past
// where cert-manager, a Vault agent or a cron job renews it) and after it expired.

import { X509Certificate } from 'node:crypto'
import type { RedisTls } from './redis.js'

/** The share of a certificate's validity left when its renewal is overdue. */
const OVERDUE_SHARE = 1 / 20
const HOUR_MS = 60 * 60 * 1000

export interface Validity {
  notBefore: Date
  notAfter: Date
}

/** When the client certificate in `tls` (the first in its file, as renewed last) is valid; undefined without one. */
export function clientCertificateValidity(tls: RedisTls | undefined): Validity | undefined {
  if (tls?.cert === undefined) return undefined
  const certificate = new X509Certificate(tls.cert)
  return { notBefore: new Date(certificate.validFrom), notAfter: new Date(certificate.validTo) }
}

/** What is wrong with the certificate's validity at `now`, for an operator; undefined while its renewal is not due. */
function overdueRenewal({ notBefore, notAfter }: Validity, now: number): string | undefined {
  const left = notAfter.getTime() - now
  if (left <= 0) return `the Redis client certificate (REDIS_TLS_CERT_FILE) expired at ${notAfter.toISOString()}: Redis refuses every new connection that shows it`
  if (left >= lifetimeOf({ notBefore, notAfter }) * OVERDUE_SHARE) return undefined
  const within = left >= HOUR_MS ? `${Math.floor(left / HOUR_MS)} h` : `${Math.ceil(left / 60_000)} min`
  return `the Redis client certificate (REDIS_TLS_CERT_FILE) expires at ${notAfter.toISOString()} (in ${within}) and has not been renewed: after that, Redis refuses every new connection that shows it`
}

/**
 * Warns through `log` now, and at every check after it, while the client certificate in `tls`
 * (renewed in place, redis-tls-renewal.ts) is overdue for renewal. Checks every hour, or twice
 * within the overdue share of a certificate valid for less than a day or so, so a short-lived
 * one is warned of too. Returns what stops the checks.
 */
export function watchClientCertificateExpiry(tls: RedisTls, log: { warn(object: unknown, message: string): void }, now: () => number = Date.now): () => void {
  let timer: NodeJS.Timeout | undefined
  const check = () => {
    const validity = clientCertificateValidity(tls)
    if (!validity) return
    const problem = overdueRenewal(validity, now())
    if (problem) log.warn({ notAfter: validity.notAfter.toISOString() }, problem)
    timer = setTimeout(check, Math.max(1000, Math.min(HOUR_MS, (lifetimeOf(validity) * OVERDUE_SHARE) / 2)))
    timer.unref()
  }
  check()
  return () => clearTimeout(timer)
}

function lifetimeOf({ notBefore, notAfter }: Validity): number {
  return notAfter.getTime() - notBefore.getTime()
}
