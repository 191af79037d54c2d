// A client certificate that nobody renewed is found out late: Redis checks it only when a
// connection opens, so the gateway runs on its open connections past the expiry and is cut
// off at its next reconnect (a failover, a dropped link), long after anyone could have acted.
// So the certificate in use is watched: its expiry is a metric for alerting (metrics), and
// the gateway warns, every hour, once less than a twentieth of its validity is left (past
// where cert-manager, a Vault agent or a cron job renews it) and after it expired.

import { X509Certificate } from 'node:crypto'
import type { RedisTls } from './redis.js'

/** The share of a certificate's validity left when its renewal is overdue. */
const OVERDUE_SHARE = 1 / 20
const CHECK_EVERY_MS = 60 * 60 * 1000

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
export function overdueRenewal({ notBefore, notAfter }: Validity, now: number): string | undefined {
  const left = notAfter.getTime() - now
  if (left <= 0) return `the Redis client certificate (REDIS_TLS_CERT_FILE) expired at ${notAfter.toISOString()}: Redis refuses every new connection that shows it`
  if (left >= (notAfter.getTime() - notBefore.getTime()) * OVERDUE_SHARE) return undefined
  const hours = Math.floor(left / 3_600_000)
  return `the Redis client certificate (REDIS_TLS_CERT_FILE) expires at ${notAfter.toISOString()} (in ${hours} h) and has not been renewed: after that, Redis refuses every new connection that shows it`
}

/**
 * Warns through `log` now and every hour while the client certificate in `tls` (renewed in
 * place, redis-tls-renewal.ts) is overdue for renewal. Returns what stops the checks.
 */
export function watchClientCertificateExpiry(tls: RedisTls, log: { warn(object: unknown, message: string): void }, now: () => number = Date.now): () => void {
  const check = () => {
    const validity = clientCertificateValidity(tls)
    const problem = validity && overdueRenewal(validity, now())
    if (problem) log.warn({ notAfter: validity.notAfter.toISOString() }, problem)
  }
  check()
  const timer = setInterval(check, CHECK_EVERY_MS)
  timer.unref()
  return () => clearInterval(timer)
}
