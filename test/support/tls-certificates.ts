// A certificate authority of the test process's own and a server certificate it signed for
// 127.0.0.1, made with the openssl command once per process, for Redis servers that speak TLS.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCertificates {
  /** PEM files: the authority's certificate, and the server's certificate and key. */
  caFile: string
  certFile: string
  keyFile: string
  /** The authority's certificate as PEM text. */
  ca: string
}

let made: TestCertificates | undefined

export function testCertificates(): TestCertificates {
  if (made) return made
  const dir = mkdtempSync(join(tmpdir(), 'test-tls-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string) => join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl('req', '-x509', ...ecKey, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', '/CN=gateway test authority')
  openssl('req', ...ecKey, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1')
  writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1\n')
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.crt'), '-days', '2', '-extfile', file('server.ext'))
  made = { caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key'), ca: readFileSync(file('ca.crt'), 'utf8') }
  return made
}
