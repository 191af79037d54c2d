// A certificate authority of the test process's own and what it signed: a server certificate
// for 127.0.0.1, another for the host name localhost, a client certificate, an expired one and
// one that expires within the hour;
// and a second authority with a client certificate and a server certificate for 127.0.0.1 of
// its own, renewals of the first's.
// Made with the openssl command once per process, for Redis servers that speak TLS and the
// clients they may ask for a certificate.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

export interface TestCertificates {
  /** PEM files: the authority's certificate, and the server's certificate and key. */
  caFile: string
  certFile: string
  keyFile: string
  /** The authority's certificate as PEM text. */
  ca: string
  /** PEM files: a client certificate the authority signed, and its key. */
  clientCertFile: string
  clientKeyFile: string
  /** What a test client shows a server that asks for a certificate, and whom it trusts (ioredis' `tls`); the name it checks, if not the address dialled. */
  clientTls: { ca: string; cert: string; key: string; servername?: string }
  /** A client certificate and key, signed by the authority, that expired when it was made. */
  expiredCertFile: string
  expiredKeyFile: string
  /** A client certificate and key, signed by the authority, valid for 48 hours of which 1 is left: its renewal is overdue. */
  nearlyExpiredCertFile: string
  nearlyExpiredKeyFile: string
  /** A second authority (PEM file), and a client certificate and key it signed: a renewal that a server trusting only the first refuses. */
  renewalCaFile: string
  renewedCertFile: string
  renewedKeyFile: string
  /** PEM files: a server certificate for 127.0.0.1 the second authority signed, and its key. */
  renewedServerCertFile: string
  renewedServerKeyFile: string
}

let made: TestCertificates | undefined

export function testCertificates(): TestCertificates {
  if (made) return made
  const dir = mkdtempSync(join(tmpdir(), 'test-tls-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string) => join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const authority = (name: string, subject: string) => openssl('req', '-x509', ...ecKey, '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`), '-days', '2', '-subj', `/CN=${subject}`)
  /** A certificate and key `by` signed, for `extension` (what it names, or what it is for), valid for `days`. */
  const signed = (name: string, extension: string, { by = 'ca', days = '2' } = {}) => {
    openssl('req', ...ecKey, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`)
    writeFileSync(file(`${name}.ext`), `${extension}\n`)
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${by}.crt`), '-CAkey', file(`${by}.key`), '-CAcreateserial', '-out', file(`${name}.crt`), '-days', days, '-extfile', file(`${name}.ext`))
  }
  authority('ca', 'gateway test authority')
  signed('server', 'subjectAltName=IP:127.0.0.1')
  // A server certificate that names the host `localhost` and no address.
  signed('localhost', 'subjectAltName=DNS:localhost')
  signed('gateway', 'extendedKeyUsage=clientAuth')
  // -days 0: valid until the second it was made.
  signed('expired', 'extendedKeyUsage=clientAuth', { days: '0' })
  // Issued 47 hours ago, for 48 hours: `openssl ca` takes exact dates, where `x509 -req` takes whole days from now.
  openssl('req', ...ecKey, '-keyout', file('nearly-expired.key'), '-out', file('nearly-expired.csr'), '-subj', '/CN=nearly-expired')
  writeFileSync(file('ca-database.txt'), '')
  writeFileSync(file('ca.cnf'), `[ca]\ndefault_ca = test\n[test]\ndatabase = ${file('ca-database.txt')}\nnew_certs_dir = ${dir}\nserial = ${file('ca.srl')}\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n`)
  writeFileSync(file('nearly-expired.ext'), 'extendedKeyUsage=clientAuth\n')
  const utc = (offsetHours: number) => new Date(Date.now() + offsetHours * 3_600_000).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
  openssl('ca', '-batch', '-notext', '-config', file('ca.cnf'), '-cert', file('ca.crt'), '-keyfile', file('ca.key'), '-in', file('nearly-expired.csr'), '-out', file('nearly-expired.crt'), '-startdate', utc(-47), '-enddate', utc(1), '-extfile', file('nearly-expired.ext'))
  authority('renewal-ca', 'gateway test renewal authority')
  // Valid a day longer than the certificate it renews, as a renewal is.
  signed('renewed', 'extendedKeyUsage=clientAuth', { by: 'renewal-ca', days: '3' })
  signed('renewed-server', 'subjectAltName=IP:127.0.0.1', { by: 'renewal-ca' })
  const ca = readFileSync(file('ca.crt'), 'utf8')
  made = {
    caFile: file('ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    ca,
    clientCertFile: file('gateway.crt'),
    clientKeyFile: file('gateway.key'),
    clientTls: { ca, cert: readFileSync(file('gateway.crt'), 'utf8'), key: readFileSync(file('gateway.key'), 'utf8') },
    expiredCertFile: file('expired.crt'),
    expiredKeyFile: file('expired.key'),
    nearlyExpiredCertFile: file('nearly-expired.crt'),
    nearlyExpiredKeyFile: file('nearly-expired.key'),
    renewalCaFile: file('renewal-ca.crt'),
    renewedCertFile: file('renewed.crt'),
    renewedKeyFile: file('renewed.key'),
    renewedServerCertFile: file('renewed-server.crt'),
    renewedServerKeyFile: file('renewed-server.key'),
  }
  return made
}

/**
 * The same authority and client certificate, with a server certificate that names the host
 * `localhost` and no address, as managed Redis services' certificates name hosts: a client
 * that dials 127.0.0.1 refuses it.
 */
export function localhostCertificates(): TestCertificates {
  const certificates = testCertificates()
  const file = (name: string) => join(dirname(certificates.caFile), name)
  return { ...certificates, certFile: file('localhost.crt'), keyFile: file('localhost.key'), clientTls: { ...certificates.clientTls, servername: 'localhost' } }
}

/** The gateway's settings for servers made with these certificates; `clientCertificates`: the servers ask for one. */
export function tlsEnv(certificates: TestCertificates, clientCertificates = false): Record<string, string> {
  return {
    REDIS_TLS: 'true',
    REDIS_TLS_CA_FILE: certificates.caFile,
    ...(clientCertificates && { REDIS_TLS_CERT_FILE: certificates.clientCertFile, REDIS_TLS_KEY_FILE: certificates.clientKeyFile }),
  }
}
