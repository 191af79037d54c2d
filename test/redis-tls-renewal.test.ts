// Certificates renewed while the gateway runs (REDIS_TLS_RELOAD_SECONDS): the client
// certificate and key files are replaced, as cert-manager or a Vault agent replaces them, and
// Redis then trusts only the renewal's authority. The gateway's next connection shows the
// renewed certificate, without a restart. A certificate file that changed before its key,
// or a renewal start-up would refuse (an expired certificate), leaves the previous pair in use.

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { connectRedis } from '../src/storage/redis.js'
import { loginWithGoogle, startTestGateway, type GatewayUnderTest } from './support/gateway.js'
import { startRedis } from './support/redis.js'
import { startupOutcome } from './support/shared-redis.js'
import { testCertificates } from './support/tls-certificates.js'

const certificates = testCertificates()
const RELOAD_SECONDS = 1
/** Long enough for a check of the files (every RELOAD_SECONDS) to have run on a busy machine. */
const seen = () => sleep(RELOAD_SECONDS * 3000)

t.test('a renewed client certificate is shown on the next connection to Redis, without a restart', async (t) => {
  const server = await startRedis({ tls: certificates, clientCertificates: true })
  t.teardown(() => server.stop())
  // The test's own connection, made before Redis changes whom it trusts, stays open throughout.
  const admin = new Redis(server.url, { tls: certificates.clientTls })
  t.teardown(() => admin.disconnect())

  const dir = mkdtempSync(join(tmpdir(), 'renewed-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const certFile = join(dir, 'client.crt')
  const keyFile = join(dir, 'client.key')
  copyFileSync(certificates.clientCertFile, certFile)
  copyFileSync(certificates.clientKeyFile, keyFile)

  const gateway = await startTestGateway({
    redis: {
      REDIS_URL: server.url,
      REDIS_TLS_CA_FILE: certificates.caFile,
      REDIS_TLS_CERT_FILE: certFile,
      REDIS_TLS_KEY_FILE: keyFile,
      REDIS_TLS_RELOAD_SECONDS: String(RELOAD_SECONDS),
    },
  })
  t.teardown(() => gateway.close())
  const login = await loginWithGoogle(gateway, { sub: 'renewal-1', email: 'renewal@example.com', name: 'Renewal' })
  t.equal(login.statusCode, 200)
  let refreshToken: string = login.json().refreshToken

  /** Drops the gateway's connections to Redis, then refreshes as a client does, retrying while Redis is out of reach (503). */
  const refreshOnNewConnection = async () => {
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal')
    for (let attempt = 1; ; attempt++) {
      const answer = await refresh(gateway, refreshToken)
      if (answer.statusCode === 200) refreshToken = answer.json().refreshToken
      if (answer.statusCode !== 503 || attempt === 40) return answer.statusCode
      await sleep(250)
    }
  }

  await t.test('the certificate file is renewed before its key: the previous pair stays in use', async (t) => {
    copyFileSync(certificates.renewedCertFile, certFile)
    await seen()
    t.equal(await refreshOnNewConnection(), 200)
  })

  await t.test('then the key: the renewed pair is shown to a Redis that trusts only the renewal authority', async (t) => {
    copyFileSync(certificates.renewedKeyFile, keyFile)
    await seen()
    await admin.config('SET', 'tls-ca-cert-file', certificates.renewalCaFile)
    t.match(
      await startupOutcome(connectRedis({ url: server.url, tls: certificates.clientTls }, { warn() {} })),
      /Redis refused the gateway's client certificate/,
      'Redis now refuses the certificate the gateway started with',
    )
    t.equal(await refreshOnNewConnection(), 200)
  })

  await t.test('a renewal that start-up would refuse (an expired certificate) leaves the pair in use as it is', async (t) => {
    copyFileSync(certificates.expiredCertFile, certFile)
    copyFileSync(certificates.expiredKeyFile, keyFile)
    await seen()
    t.equal(await refreshOnNewConnection(), 200)
  })
})

function refresh(gateway: GatewayUnderTest, refreshToken: string) {
  return gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
}
