// A Redis client certificate whose renewal is overdue is said in the log, before Redis starts
// refusing it: once less than a twentieth of its validity is left, and after it expired. The
// certificates are real (openssl); the clock is moved instead of waiting days, except for a
// gateway started with a certificate issued 47 hours ago for 48.

import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startTestGateway } from './support/gateway.js'
import { startRedis } from './support/redis.js'
import { clientCertificateValidity, watchClientCertificateExpiry } from '../src/storage/redis-tls-expiry.js'
import { testCertificates } from './support/tls-certificates.js'

const certificates = testCertificates()
/** The gateway's client certificate (valid two days from when the tests made it) as the gateway holds it. */
const inUse = { ca: certificates.ca, cert: readFileSync(certificates.clientCertFile, 'utf8'), key: readFileSync(certificates.clientKeyFile, 'utf8') }
const HOUR = 3_600_000

function warningsAt(tls: { cert?: string }, now: number): { object: unknown; message: string }[] {
  const warnings: { object: unknown; message: string }[] = []
  const stop = watchClientCertificateExpiry(tls, { warn: (object, message) => warnings.push({ object, message }) }, () => now)
  stop()
  return warnings
}

t.test('the validity read is the certificate in use', async (t) => {
  const validity = clientCertificateValidity(inUse)!
  t.equal(validity.notAfter.getTime() - validity.notBefore.getTime(), 48 * HOUR, 'the two days it was made for')
  t.equal(clientCertificateValidity({ ca: certificates.ca }), undefined, 'no client certificate, nothing to watch')
})

t.test('no warning while the renewal is not due', async (t) => {
  const { notAfter } = clientCertificateValidity(inUse)!
  t.same(warningsAt(inUse, Date.now()), [], 'just made')
  t.same(warningsAt(inUse, notAfter.getTime() - 3 * HOUR), [], '3 h of 48 left: more than a twentieth')
})

t.test('a warning once less than a twentieth of its validity is left: when it expires, and what happens then', async (t) => {
  const { notAfter } = clientCertificateValidity(inUse)!
  const warnings = warningsAt(inUse, notAfter.getTime() - 2 * HOUR)
  t.equal(warnings.length, 1)
  t.match(warnings[0]!.message, /^the Redis client certificate \(REDIS_TLS_CERT_FILE\) expires at .* \(in 2 h\) and has not been renewed: after that, Redis refuses every new connection/)
  t.ok(warnings[0]!.message.includes(notAfter.toISOString()))
  t.same(warnings[0]!.object, { notAfter: notAfter.toISOString() })
  t.notMatch(JSON.stringify(warnings), /BEGIN|PRIVATE/, 'nothing of the certificate or its key is logged')
})

t.test('in its last hour, the minutes left', async (t) => {
  const { notAfter } = clientCertificateValidity(inUse)!
  t.match(warningsAt(inUse, notAfter.getTime() - 30 * 60_000)[0]?.message, /expires at .* \(in 30 min\) and has not been renewed/)
})

t.test('a warning after it expired', async (t) => {
  const expired = { cert: readFileSync(certificates.expiredCertFile, 'utf8') }
  const warnings = warningsAt(expired, Date.now() + 1000)
  t.equal(warnings.length, 1)
  t.match(warnings[0]!.message, /^the Redis client certificate \(REDIS_TLS_CERT_FILE\) expired at .*: Redis refuses every new connection that shows it$/)
})

t.test('a certificate renewed in place (as renewal does) is the one checked', async (t) => {
  const tls = { ...inUse, cert: readFileSync(certificates.expiredCertFile, 'utf8') }
  t.equal(warningsAt(tls, Date.now() + 1000).length, 1)
  Object.assign(tls, { cert: readFileSync(certificates.renewedCertFile, 'utf8') })
  t.same(warningsAt(tls, Date.now() + 1000), [])
})

t.test('the warning comes again while the renewal stays overdue, and stops once it came', async (t) => {
  // Valid for no time at all: checked every second, the shortest interval.
  const tls = { ...inUse, cert: readFileSync(certificates.expiredCertFile, 'utf8') }
  const warnings: string[] = []
  const stop = watchClientCertificateExpiry(tls, { warn: (_object, message) => warnings.push(message) })
  t.teardown(stop)
  await sleep(2500)
  t.ok(warnings.length >= 2, `warned ${warnings.length} times in 2.5 s`)
  Object.assign(tls, { cert: readFileSync(certificates.renewedCertFile, 'utf8') })
  await sleep(1500)
  const afterRenewal = warnings.length
  await sleep(2000)
  t.equal(warnings.length, afterRenewal, 'no warning once the renewed certificate is in use')
})

t.test('a gateway started with a certificate whose renewal is overdue says so in its log, and runs', async (t) => {
  const server = await startRedis({ tls: certificates, clientCertificates: true })
  t.teardown(() => server.stop())
  const lines: string[] = []
  const gateway = await startTestGateway({
    redis: { REDIS_URL: server.url, REDIS_TLS_CA_FILE: certificates.caFile, REDIS_TLS_CERT_FILE: certificates.nearlyExpiredCertFile, REDIS_TLS_KEY_FILE: certificates.nearlyExpiredKeyFile },
    logger: { level: 'warn', stream: { write: (line: string) => lines.push(line) } },
  })
  t.teardown(() => gateway.close())
  const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; notAfter?: string }).filter((line) => line.level === 40 && line.msg.includes('REDIS_TLS_CERT_FILE'))
  const { notAfter } = clientCertificateValidity({ cert: readFileSync(certificates.nearlyExpiredCertFile, 'utf8') })!
  t.match(warnings, [{ msg: /^the Redis client certificate \(REDIS_TLS_CERT_FILE\) expires at .* \(in (59|60) min\) and has not been renewed/, notAfter: notAfter.toISOString() }])
  t.notMatch(lines.join(''), /BEGIN|PRIVATE/, 'nothing of the certificate or its key is logged')
  t.equal((await gateway.app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'Redis still takes the certificate meanwhile')
})
