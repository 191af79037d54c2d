// Redis over TLS. A Cluster's nodes, or a Sentinel group's servers and Sentinels, are reached
// over TLS with REDIS_TLS=true; one Redis with a rediss:// REDIS_URL. REDIS_TLS_CA_FILE names
// the authority that signed their certificates when it is not a public one. Two gateways tell
// the whole login story over TLS; a certificate nobody vouches for stops start-up, as does a
// server that speaks TLS to a gateway that does not.

import { rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import t from 'tap'
import { connectRedis, readAuthorities } from '../src/storage/redis.js'
import { startRedis } from './support/redis.js'
import { startRedisCluster } from './support/redis-cluster.js'
import { SENTINEL_MASTER_NAME, startSentinelGroup } from './support/redis-sentinel.js'
import { loginStoryOn } from './support/shared-redis.js'
import { testCertificates } from './support/tls-certificates.js'

const certificates = testCertificates()
const PASSWORD = 'tls-pass-2a7c'
const quiet = { warn() {} }
const failure = (connecting: Promise<{ disconnect(): void }>) =>
  connecting.then(
    (redis) => {
      redis.disconnect()
      return 'connected'
    },
    (error: Error) => error.message,
  )

t.test('a Cluster whose nodes speak TLS only', async (t) => {
  const cluster = await startRedisCluster({ password: PASSWORD, tls: certificates })
  t.teardown(() => cluster.stop())
  const seeds = cluster.seeds
  const credentials = { password: PASSWORD }

  await t.test('without TLS, or with an authority that did not sign the certificates, start-up fails and says why', async (t) => {
    t.match(await failure(connectRedis({ clusterNodes: seeds, credentials }, quiet)), /None of startup nodes is available \(last connection error: /)
    // Node's public authorities do not vouch for the test authority: TLS checks the chain.
    // (ioredis' Cluster keeps the TLS error to itself: its connection only closes.)
    t.match(await failure(connectRedis({ clusterNodes: seeds, credentials, tls: {} }, quiet)), /^None of startup nodes is available/)
  })

  await t.test('two gateways with REDIS_TLS and REDIS_TLS_CA_FILE tell the whole login story', async (t) => {
    t.match(cluster.env, { REDIS_TLS: 'true', REDIS_TLS_CA_FILE: certificates.caFile })
    const redisOptions = { password: PASSWORD, tls: { ca: certificates.ca }, maxRetriesPerRequest: 0, commandTimeout: 500 }
    await loginStoryOn(t, cluster.env, new Cluster(seeds, { enableOfflineQueue: false, lazyConnect: true, redisOptions }))
  })
})

t.test('a Sentinel group whose servers and Sentinels speak TLS only', async (t) => {
  const group = await startSentinelGroup({ password: PASSWORD, tls: certificates })
  t.teardown(() => group.stop())
  const sentinels = group.sentinelAddresses

  await t.test('without TLS, start-up fails', async (t) => {
    t.match(await failure(connectRedis({ sentinels, sentinelName: SENTINEL_MASTER_NAME, credentials: { password: PASSWORD } }, quiet)), /not ready within 10 s|Connection is closed/)
  })

  await t.test('two gateways with REDIS_TLS and REDIS_TLS_CA_FILE tell the whole login story', (t) => {
    const tls = { ca: certificates.ca }
    return loginStoryOn(
      t,
      group.env,
      new Redis({ sentinels, name: SENTINEL_MASTER_NAME, password: PASSWORD, tls, sentinelTLS: tls, enableTLSForSentinelMode: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, lazyConnect: true }),
    )
  })
})

t.test('one Redis over TLS: a rediss:// URL, with REDIS_TLS_CA_FILE for a private authority', async (t) => {
  const server = await startRedis({ tls: certificates })
  t.teardown(() => server.stop())
  t.match(server.url, /^rediss:\/\//)
  const redis = await connectRedis({ url: server.url, tls: { ca: await readAuthorities(certificates.caFile, 'REDIS_TLS_CA_FILE') } }, quiet)
  t.teardown(() => redis.disconnect())
  t.equal(await redis.set('over-tls', 'yes'), 'OK')
  t.match(await failure(connectRedis({ url: server.url }, quiet)), /self-signed certificate in certificate chain/, "without it, Node's public authorities refuse the certificate")
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
})
