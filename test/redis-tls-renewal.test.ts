// Certificates renewed while the gateway runs (REDIS_TLS_RELOAD_SECONDS). One server: the
// client certificate and key files are replaced, as cert-manager or a Vault agent replaces
// them, and Redis then trusts only the renewal's authority; the gateway's next connection
// shows the renewed certificate, without a restart. A certificate file that changed before its
// key, or a renewal start-up would refuse (an expired certificate), leaves the previous pair in
// use. A renewal that comes only after Redis refused the pair in use (it expired unrenewed):
// the gateway answers 503 and keeps reconnecting, and the session outlives the wait. The same
// through a Kubernetes secret's mount, where both files change at once when a
// symlink is swapped. A Cluster: the authority file gains the new authority, then every node
// moves to a certificate only that one signed; the gateway's new node connections trust it.
// A Sentinel group likewise, its Sentinels restarted with theirs: the gateway asks them, and
// reaches the master they name, with the renewed authority file.

import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { freeLoopbackPort } from '../src/common/loopback.js'
import { connectRedis } from '../src/storage/redis.js'
import { loginWithGoogle, startTestGateway, type GatewayUnderTest } from './support/gateway.js'
import { startRedis, type TestRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { SENTINEL_MASTER_NAME, startSentinelGroup } from './support/redis-sentinel.js'
import { startupOutcome } from './support/shared-redis.js'
import { testCertificates } from './support/tls-certificates.js'

const certificates = testCertificates()
const RELOAD_SECONDS = 1
/** Long enough for a check of the files (every RELOAD_SECONDS) to have run on a busy machine. */
const seen = () => sleep(RELOAD_SECONDS * 3000)
const quiet = { warn() {} }

t.test('a renewed client certificate is shown on the next connection to Redis, without a restart', async (t) => {
  const { server, admin } = await serverAskingForCertificates(t)
  const dir = temporaryDir(t)
  const certFile = join(dir, 'client.crt')
  const keyFile = join(dir, 'client.key')
  copyFileSync(certificates.clientCertFile, certFile)
  copyFileSync(certificates.clientKeyFile, keyFile)

  const started = await renewingGatewayWithUser(t, oneServer(server, certFile, keyFile), 'renewal-1')
  const { gateway } = started
  let { refreshToken } = started
  const refreshOnNewConnection = async () => {
    const refreshed = await refreshOnNewConnections(gateway, [admin], refreshToken)
    refreshToken = refreshed.refreshToken
    return refreshed.status
  }

  await t.test('the certificate file is renewed before its key: the previous pair stays in use', async (t) => {
    copyFileSync(certificates.renewedCertFile, certFile)
    await seen()
    t.equal(await refreshOnNewConnection(), 200)
  })

  await t.test('then the key: the renewed pair is shown to a Redis that trusts only the renewal authority', async (t) => {
    t.equal(await certificateExpiryOf(gateway), expiryOf(certificates.clientCertFile), 'until then, the metric names the expiry of the certificate the gateway started with')
    copyFileSync(certificates.renewedKeyFile, keyFile)
    await seen()
    t.equal(await certificateExpiryOf(gateway), expiryOf(certificates.renewedCertFile), "the metric names the renewed certificate's expiry")
    await admin.config('SET', 'tls-ca-cert-file', certificates.renewalCaFile)
    t.match(
      await startupOutcome(connectRedis({ url: server.url, tls: certificates.clientTls }, quiet)),
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

  await t.test('a renewal that arrives only after Redis refused the pair in use (it expired): 503 meanwhile, then refreshes again', async (t) => {
    // Redis goes back to trusting only the first authority: the renewed pair is refused from now on.
    await admin.config('SET', 'tls-ca-cert-file', certificates.caFile)
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal')
    const refresh = () => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
    const refused = await refresh()
    t.equal(refused.statusCode, 503, 'Redis is out of reach: unavailable, never a 401')
    t.equal(refused.json().error, 'unavailable')
    // Several reconnections fail meanwhile (one every second at most).
    await sleep(3000)
    t.equal((await refresh()).statusCode, 503, 'still refused, and still trying')
    copyFileSync(certificates.clientCertFile, certFile)
    copyFileSync(certificates.clientKeyFile, keyFile)
    await seen()
    t.equal(await refreshOnNewConnection(), 200, 'the session survived, on a connection that shows the new pair')
  })
})

t.test('a Kubernetes secret renewed under its mount (the ..data symlink swapped): both files at once', async (t) => {
  const { server, admin } = await serverAskingForCertificates(t)
  // The layout the kubelet writes: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>, replaced by one rename.
  const mount = temporaryDir(t)
  const version = (name: string, certFile: string, keyFile: string) => {
    mkdirSync(join(mount, name))
    copyFileSync(certFile, join(mount, name, 'tls.crt'))
    copyFileSync(keyFile, join(mount, name, 'tls.key'))
    symlinkSync(name, join(mount, '..data_tmp'))
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'))
  }
  version('..2026_12_01', certificates.clientCertFile, certificates.clientKeyFile)
  symlinkSync('..data/tls.crt', join(mount, 'tls.crt'))
  symlinkSync('..data/tls.key', join(mount, 'tls.key'))

  const { gateway, refreshToken } = await renewingGatewayWithUser(t, oneServer(server, join(mount, 'tls.crt'), join(mount, 'tls.key')), 'renewal-3')

  version('..2026_12_02', certificates.renewedCertFile, certificates.renewedKeyFile)
  await seen()
  await admin.config('SET', 'tls-ca-cert-file', certificates.renewalCaFile)
  t.equal((await refreshOnNewConnections(gateway, [admin], refreshToken)).status, 200)
})

t.test('a renewed authority file: a Cluster moves to certificates of a new authority, without a restart of the gateway', async (t) => {
  const cluster = await startRedisCluster({ tls: certificates })
  t.teardown(() => cluster.stop())
  const admins = await Promise.all(cluster.nodes.map((node) => cluster.connectTo(node)))
  t.teardown(() => admins.forEach((admin) => admin.disconnect()))
  const dir = temporaryDir(t)
  const caFile = join(dir, 'authorities.crt')
  copyFileSync(certificates.caFile, caFile)
  const bothAuthorities = join(dir, 'both-authorities.crt')
  writeFileSync(bothAuthorities, readFileSync(certificates.caFile, 'utf8') + readFileSync(certificates.renewalCaFile, 'utf8'))

  const { gateway, refreshToken } = await renewingGatewayWithUser(t, { ...cluster.env, REDIS_TLS_CA_FILE: caFile }, 'renewal-2')

  // In the order an operator follows: the gateway trusts the new authority, then the nodes move to it.
  copyFileSync(bothAuthorities, caFile)
  await seen()
  for (const admin of admins) {
    // The nodes check each other's certificates too (tls-cluster, tls-replication): they accept either authority meanwhile.
    await admin.call('CONFIG', 'SET', 'tls-ca-cert-file', bothAuthorities)
  }
  for (const admin of admins) await admin.call('CONFIG', 'SET', 'tls-cert-file', certificates.renewedServerCertFile, 'tls-key-file', certificates.renewedServerKeyFile)
  t.match(
    await startupOutcome(connectRedis({ clusterNodes: cluster.seeds, tls: { ca: certificates.ca } }, quiet)),
    /the gateway did not trust Redis' certificate/,
    'the nodes now show certificates the first authority alone does not vouch for',
  )
  const refreshed = await refreshOnNewConnections(gateway, admins, refreshToken)
  t.equal(refreshed.status, 200, 'a refresh after the gateway reconnected to every node')
})

t.test('a renewed authority file: a Sentinel group moves to certificates of a new authority, without a restart of the gateway', async (t) => {
  const dir = temporaryDir(t)
  const bothAuthorities = join(dir, 'both-authorities.crt')
  const both = readFileSync(certificates.caFile, 'utf8') + readFileSync(certificates.renewalCaFile, 'utf8')
  writeFileSync(bothAuthorities, both)
  // Every server and Sentinel shows the certificate in these two files, and accepts either
  // authority for the others throughout; so do the group's own checks (that a server answers).
  const serverCert = join(dir, 'server.crt')
  const serverKey = join(dir, 'server.key')
  copyFileSync(certificates.certFile, serverCert)
  copyFileSync(certificates.keyFile, serverKey)
  const group = await startSentinelGroup({
    tls: { ...certificates, caFile: bothAuthorities, certFile: serverCert, keyFile: serverKey, clientTls: { ...certificates.clientTls, ca: both } },
  })
  t.teardown(() => group.stop())
  const admins = group.servers.map((server) => new Redis(server.url, { tls: certificates.clientTls }))
  t.teardown(() => admins.forEach((admin) => admin.disconnect()))
  const caFile = join(dir, 'authorities.crt')
  copyFileSync(certificates.caFile, caFile)

  const { gateway, refreshToken } = await renewingGatewayWithUser(t, { ...group.env, REDIS_TLS_CA_FILE: caFile }, 'renewal-4')

  // The gateway trusts the new authority; then the group moves to it: the Sentinels first,
  // which read their files only when they start (they have no CONFIG command), then the master
  // and its replica, when told to.
  copyFileSync(bothAuthorities, caFile)
  await seen()
  copyFileSync(certificates.renewedServerCertFile, serverCert)
  copyFileSync(certificates.renewedServerKeyFile, serverKey)
  const trustingTheFirstAuthorityOnly = () => startupOutcome(connectRedis({ sentinels: group.sentinelAddresses, sentinelName: SENTINEL_MASTER_NAME, tls: { ca: certificates.ca } }, quiet))
  let token = refreshToken

  await t.test('the Sentinels restart with certificates of the new authority: the gateway asks them with the renewed file', async (t) => {
    for (const sentinel of group.sentinels) {
      await sentinel.stop()
      await sentinel.start()
    }
    t.match(await trustingTheFirstAuthorityOnly(), /the gateway did not trust Redis' certificate/, 'the Sentinels now show certificates the first authority alone does not vouch for')
    const refreshed = await refreshOnNewConnections(gateway, admins, token)
    t.equal(refreshed.status, 200, 'a refresh after the gateway asked a Sentinel again for the master')
    token = refreshed.refreshToken
  })

  await t.test('then the master and its replica: the gateway reaches the master with the renewed file', async (t) => {
    for (const admin of admins) await admin.call('CONFIG', 'SET', 'tls-cert-file', serverCert, 'tls-key-file', serverKey)
    const master = await group.currentMaster()
    t.match(
      await startupOutcome(connectRedis({ url: master.url, tls: { ca: certificates.ca } }, quiet)),
      /the gateway did not trust Redis' certificate/,
      'the master now shows a certificate the first authority alone does not vouch for',
    )
    t.equal((await refreshOnNewConnections(gateway, admins, token)).status, 200, 'a refresh after the gateway reconnected to the master')
  })
})

/** A Redis that asks for client certificates, and the test's own connection to it: made before Redis changes whom it trusts, it stays open throughout. */
async function serverAskingForCertificates(t: Test) {
  const server = await startRedis({ tls: certificates, clientCertificates: true })
  t.teardown(() => server.stop())
  const admin = new Redis(server.url, { tls: certificates.clientTls })
  t.teardown(() => admin.disconnect())
  return { server, admin }
}

/** The gateway's settings for `server`, showing the client certificate in `certFile` and `keyFile`. */
function oneServer(server: TestRedis, certFile: string, keyFile: string): Record<string, string> {
  return { REDIS_URL: server.url, REDIS_TLS_CA_FILE: certificates.caFile, REDIS_TLS_CERT_FILE: certFile, REDIS_TLS_KEY_FILE: keyFile }
}

/** A gateway on `redis` that checks its TLS files every RELOAD_SECONDS, and a user (`sub`) logged in there. */
async function renewingGatewayWithUser(t: Test, redis: Record<string, string>, sub: string): Promise<{ gateway: GatewayUnderTest; refreshToken: string }> {
  const gateway = await startTestGateway({ redis: { ...redis, REDIS_TLS_RELOAD_SECONDS: String(RELOAD_SECONDS) }, env: { METRICS_PORT: String(await freeLoopbackPort()) } })
  t.teardown(() => gateway.close())
  const login = await loginWithGoogle(gateway, { sub, email: `${sub}@example.com`, name: sub })
  t.equal(login.statusCode, 200, `${sub} logged in`)
  return { gateway, refreshToken: login.json().refreshToken }
}

/** The client certificate's expiry as an operator's Prometheus scrapes it (seconds since the epoch). */
async function certificateExpiryOf(gateway: GatewayUnderTest): Promise<number | undefined> {
  const scraped = await gateway.metricsApp!.inject({ method: 'GET', url: '/metrics' })
  const line = scraped.body.split('\n').find((sample) => sample.startsWith('gateway_redis_tls_client_certificate_expiry_timestamp_seconds '))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

function expiryOf(certFile: string): number {
  return Date.parse(new X509Certificate(readFileSync(certFile)).validTo) / 1000
}

function temporaryDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'renewed-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Drops every client connection of `servers` (the test's own admin connections excepted), then
 * refreshes as a client does, retrying while Redis is out of reach (503).
 */
async function refreshOnNewConnections(gateway: GatewayUnderTest, servers: Redis[], refreshToken: string): Promise<{ status: number; refreshToken: string }> {
  await Promise.all(servers.map((server) => server.call('CLIENT', 'KILL', 'TYPE', 'normal')))
  for (let attempt = 1; ; attempt++) {
    const answer = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
    if (answer.statusCode === 200) return { status: 200, refreshToken: answer.json().refreshToken }
    if (answer.statusCode !== 503 || attempt === 40) return { status: answer.statusCode, refreshToken }
    await sleep(250)
  }
}
