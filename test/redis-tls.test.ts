// Redis over TLS. A Cluster's nodes, or a Sentinel group's servers and Sentinels, are reached
// over TLS with REDIS_TLS=true; one Redis with a rediss:// REDIS_URL. REDIS_TLS_CA_FILE names
// the authority that signed their certificates when it is not a public one; REDIS_TLS_CERT_FILE
// and REDIS_TLS_KEY_FILE the certificate the gateway shows servers that ask for one (Redis'
// default). Two gateways tell the whole login story over TLS. Certificates that name hosts and
// no address check out where the cluster or the Sentinels name hosts. A certificate nobody
// vouches for stops start-up, saying why, as do a server that speaks TLS to a gateway that does
// not and a server that asks for a certificate the gateway lacks or refuses the gateway's.

import { X509Certificate } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { connectRedis, loadRedisTls, readAuthorities } from '../src/storage/redis.js'
import { startRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { SENTINEL_MASTER_NAME, startSentinelGroup } from './support/redis-sentinel.js'
import { loginStoryOn, startupOutcome } from './support/shared-redis.js'
import { localhostCertificates, testCertificates, tlsEnv } from './support/tls-certificates.js'

const certificates = testCertificates()
const PASSWORD = 'tls-pass-2a7c'
const quiet = { warn() {} }

t.test('a Cluster whose nodes speak TLS only and ask for client certificates', async (t) => {
  const cluster = await startRedisCluster({ password: PASSWORD, tls: certificates, clientCertificates: true })
  t.teardown(() => cluster.stop())
  const seeds = cluster.seeds
  const credentials = { password: PASSWORD }

  await t.test('without TLS, with an authority that did not sign the certificates, or without a client certificate, start-up fails and says why', async (t) => {
    const { cert, key } = certificates.clientTls
    const [plain, untrusted, withoutCertificate] = await Promise.all([
      startupOutcome(connectRedis({ clusterNodes: seeds, credentials }, quiet)),
      // Node's public authorities do not vouch for the test authority: TLS checks the chain.
      startupOutcome(connectRedis({ clusterNodes: seeds, credentials, tls: { cert, key } }, quiet)),
      startupOutcome(connectRedis({ clusterNodes: seeds, credentials, tls: { ca: certificates.ca } }, quiet)),
    ])
    t.match(plain, /^None of startup nodes is available \(last connection error: .*\); a Redis that speaks only TLS closes plain connections: REDIS_TLS=true/)
    t.match(untrusted, /^None of startup nodes is available \(last connection error: self-signed certificate in certificate chain\); the gateway did not trust Redis' certificate: check REDIS_TLS_CA_FILE/)
    t.match(withoutCertificate, /^None of startup nodes is available \(last connection error: .*\); a Redis that asks for a client certificate closes a connection without one: check REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE$/)
  })

  await t.test('two gateways with REDIS_TLS, REDIS_TLS_CA_FILE and a client certificate tell the whole login story', async (t) => {
    t.match(cluster.env, tlsEnv(certificates, true))
    const redisOptions = { password: PASSWORD, tls: certificates.clientTls, maxRetriesPerRequest: 0, commandTimeout: 500 }
    await loginStoryOn(t, cluster.env, new Cluster(seeds, { enableOfflineQueue: false, lazyConnect: true, redisOptions }))
  })
})

t.test('a Cluster that announces host names, whose certificates name hosts and no address', async (t) => {
  // As managed clusters' do: a seed must be dialled, and its certificate checked, by its name.
  const named = localhostCertificates()
  const cluster = await startRedisCluster({ tls: named, hostname: 'localhost' })
  t.teardown(() => cluster.stop())
  t.match(cluster.env, { REDIS_CLUSTER_NODES: /^localhost:\d+,localhost:\d+,localhost:\d+$/, REDIS_TLS: 'true' })
  const redis = await connectRedis({ clusterNodes: cluster.seeds, tls: { ca: named.ca } }, quiet)
  t.teardown(() => redis.disconnect())
  // One key on each master: every master is reached by the name it announces.
  const keys = ['{a}', '{b}', '{c}', '{d}', '{e}', '{f}'].map((tag) => `${tag}:over-tls`)
  const owners = new Set(await Promise.all(keys.map((key) => cluster.masterOf(key).then((node) => node.port))))
  t.equal(owners.size, 3, 'the keys lie on all three masters')
  for (const key of keys) t.equal(await redis.set(key, 'yes'), 'OK')
  t.same(await Promise.all(keys.map((key) => redis.get(key))), keys.map(() => 'yes'))
})

t.test('a Sentinel group whose servers and Sentinels speak TLS only and ask for client certificates', async (t) => {
  const group = await startSentinelGroup({ password: PASSWORD, tls: certificates, clientCertificates: true })
  t.teardown(() => group.stop())
  const sentinels = group.sentinelAddresses

  await t.test('without TLS, or without a client certificate, start-up fails and says why', async (t) => {
    // ioredis says only that the Sentinels are unreachable: the first Sentinel, asked directly, says why.
    const settings = { sentinels, sentinelName: SENTINEL_MASTER_NAME, credentials: { password: PASSWORD } }
    const [plain, withoutCertificate] = await Promise.all([startupOutcome(connectRedis(settings, quiet)), startupOutcome(connectRedis({ ...settings, tls: { ca: certificates.ca } }, quiet))])
    t.match(plain, /^Redis was not ready within 10 s of start-up \(last connection error: .*\); a Redis that speaks only TLS closes plain connections/)
    t.match(withoutCertificate, /^Redis was not ready within 10 s of start-up \(last connection error: .*\); a Redis that asks for a client certificate closes a connection without one/)
  })

  await t.test('two gateways with REDIS_TLS, REDIS_TLS_CA_FILE and a client certificate tell the whole login story', (t) => {
    t.match(group.env, tlsEnv(certificates, true))
    const tls = certificates.clientTls
    return loginStoryOn(
      t,
      group.env,
      new Redis({ sentinels, name: SENTINEL_MASTER_NAME, password: PASSWORD, tls, sentinelTLS: tls, enableTLSForSentinelMode: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, lazyConnect: true }),
    )
  })
})

t.test('a Sentinel group that names hosts, whose certificates name hosts and no address', async (t) => {
  // As Kubernetes charts run Sentinel: the master and the Sentinels are dialled, and their certificates checked, by name.
  const named = localhostCertificates()
  const group = await startSentinelGroup({ tls: named, hostname: 'localhost' })
  t.teardown(() => group.stop())
  t.match(group.env, { REDIS_SENTINELS: /^localhost:\d+,localhost:\d+,localhost:\d+$/, REDIS_TLS: 'true' })
  const redis = await connectRedis({ sentinels: group.sentinelAddresses, sentinelName: SENTINEL_MASTER_NAME, tls: { ca: named.ca } }, quiet)
  t.teardown(() => redis.disconnect())
  // Dialled at 127.0.0.1, the master's certificate would not check out.
  t.equal(await redis.set('named-master', 'yes'), 'OK', 'the master, reached by the name the Sentinels give')
})

t.test('one Redis over TLS: a rediss:// URL, with REDIS_TLS_CA_FILE for a private authority', async (t) => {
  const server = await startRedis({ tls: certificates })
  t.teardown(() => server.stop())
  t.match(server.url, /^rediss:\/\//)
  const redis = await connectRedis({ url: server.url, tls: { ca: await readAuthorities(certificates.caFile, 'REDIS_TLS_CA_FILE') } }, quiet)
  t.teardown(() => redis.disconnect())
  t.equal(await redis.set('over-tls', 'yes'), 'OK')
  t.match(await startupOutcome(connectRedis({ url: server.url }, quiet)), /self-signed certificate in certificate chain\); the gateway did not trust Redis' certificate/, "without it, Node's public authorities refuse the certificate")

  const named = await startRedis({ tls: localhostCertificates() })
  t.teardown(() => named.stop())
  t.match(
    await startupOutcome(connectRedis({ url: named.url, tls: { ca: certificates.ca } }, quiet)),
    /\(last connection error: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list: ?\); the gateway did not trust Redis' certificate: check REDIS_TLS_CA_FILE, and that the certificate names the host the gateway dials$/,
    'a certificate for another name: start-up says so',
  )
})

t.test('one Redis that asks for a client certificate: REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE', async (t) => {
  const server = await startRedis({ tls: certificates, clientCertificates: true })
  t.teardown(() => server.stop())
  const tls = await loadRedisTls({ tls: false, caFile: certificates.caFile, clientCertificate: { certFile: certificates.clientCertFile, keyFile: certificates.clientKeyFile } })
  t.same(tls, certificates.clientTls, 'the authority, the certificate and its key, read from their files')
  const redis = await connectRedis({ url: server.url, tls }, quiet)
  t.teardown(() => redis.disconnect())
  t.equal(await redis.set('with-a-certificate', 'yes'), 'OK')
  t.match(
    await startupOutcome(connectRedis({ url: server.url, tls: { ca: certificates.ca } }, quiet)),
    /^Connection is closed\. \(last connection error: .*\); a Redis that asks for a client certificate closes a connection without one: check REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE$/,
    'without one, the server refuses the connection, and start-up says what to check',
  )
  // Start-up refuses an expired certificate before dialling (below); past that check, the server refuses it.
  const expired = { ca: certificates.ca, cert: readFileSync(certificates.expiredCertFile, 'utf8'), key: readFileSync(certificates.expiredKeyFile, 'utf8') }
  t.match(
    await startupOutcome(connectRedis({ url: server.url, tls: expired }, quiet)),
    /^Connection is closed\. \(last connection error: .*\); Redis refused the gateway's client certificate \(REDIS_TLS_CERT_FILE\)/,
    'a certificate the server refuses: start-up says the server refused it',
  )
})

t.test('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE must be a certificate valid today and its own unencrypted key', async (t) => {
  const certificate = (certFile: string, keyFile: string) => loadRedisTls({ tls: true, clientCertificate: { certFile, keyFile } })
  t.equal(await loadRedisTls({ tls: false }), undefined, 'no TLS settings: no TLS options')
  t.same(await loadRedisTls({ tls: true }), {}, "REDIS_TLS alone: TLS with Node's authorities")
  await t.rejects(certificate(certificates.clientCertFile, certificates.keyFile), {
    name: 'ConfigError',
    problems: [`REDIS_TLS_KEY_FILE: "${certificates.keyFile}" is not the private key of the certificate in REDIS_TLS_CERT_FILE`],
  })
  await t.rejects(certificate(certificates.clientKeyFile, certificates.clientKeyFile), { name: 'ConfigError', problems: [`REDIS_TLS_CERT_FILE: "${certificates.clientKeyFile}" holds no PEM certificate`] })
  await t.rejects(certificate(certificates.clientCertFile, certificates.clientCertFile), { name: 'ConfigError', problems: [`REDIS_TLS_KEY_FILE: "${certificates.clientCertFile}" holds no unencrypted PEM private key`] })
  const missing = join(tmpdir(), 'no-such-key.pem')
  await t.rejects(certificate(certificates.clientCertFile, missing), { name: 'ConfigError', problems: [`REDIS_TLS_KEY_FILE: cannot read the file "${missing}"`] })
  // A chain certificate after the client's own that does not parse: every connection attempt would throw.
  const brokenChain = join(tmpdir(), `broken-chain-${process.pid}.pem`)
  writeFileSync(brokenChain, `${readFileSync(certificates.clientCertFile, 'utf8')}-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n`)
  t.teardown(() => rmSync(brokenChain, { force: true }))
  await t.rejects(certificate(brokenChain, certificates.clientKeyFile), {
    name: 'ConfigError',
    problems: [`REDIS_TLS_CERT_FILE: OpenSSL cannot use the certificates in "${brokenChain}" (error:04800064:PEM routines::bad base64 decode)`],
  })

  // The expired certificate was valid until the second it was made.
  const expiry = Date.parse(new X509Certificate(readFileSync(certificates.expiredCertFile)).validTo)
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiry + 1000 - Date.now())))
  await t.rejects(certificate(certificates.expiredCertFile, certificates.expiredKeyFile), { name: 'ConfigError', problems: [/^REDIS_TLS_CERT_FILE: the certificate in ".*expired\.crt" expired on /] })
})

t.test('REDIS_TLS_CA_FILE must be a readable file of PEM certificates', async (t) => {
  await t.rejects(readAuthorities(join(tmpdir(), 'no-such-authority.pem'), 'REDIS_TLS_CA_FILE'), {
    name: 'ConfigError',
    problems: [`REDIS_TLS_CA_FILE: cannot read the file "${join(tmpdir(), 'no-such-authority.pem')}"`],
  })
  const notCertificates = join(tmpdir(), `not-certificates-${process.pid}.pem`)
  writeFileSync(notCertificates, 'just text\n')
  t.teardown(() => rmSync(notCertificates, { force: true }))
  await t.rejects(readAuthorities(notCertificates, 'REDIS_TLS_CA_FILE'), { name: 'ConfigError', problems: [`REDIS_TLS_CA_FILE: "${notCertificates}" holds no PEM certificate`] })
  // Cut short while being written, or a certificate that does not parse: OpenSSL would quietly trust fewer authorities.
  const authorities = readFileSync(certificates.caFile, 'utf8') + readFileSync(certificates.renewalCaFile, 'utf8')
  for (const [what, text] of [
    ['cut short', authorities.slice(0, authorities.length - 200)],
    ['garbled', authorities.replace(/^M.{10}/m, 'not base64!')],
  ]) {
    writeFileSync(notCertificates, text!)
    await t.rejects(readAuthorities(notCertificates, 'REDIS_TLS_CA_FILE'), { name: 'ConfigError', problems: [`REDIS_TLS_CA_FILE: "${notCertificates}" holds a PEM certificate that does not parse`] }, what)
  }
  writeFileSync(notCertificates, authorities)
  t.equal(await readAuthorities(notCertificates, 'REDIS_TLS_CA_FILE'), authorities, 'two whole certificates')
})
