// Configuration is checked once at start-up; every problem is named on its own line, and
// production refuses the settings that are only safe on a developer's machine.

import { spawnSync } from 'node:child_process'
import t from 'tap'
import { ConfigError } from '../src/common/errors.js'
import { loadConfig } from '../src/config.js'

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env)
    return []
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
}

t.test('defaults follow the contract', async (t) => {
  const config = loadConfig({})
  t.equal(config.port, 3000)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.publicUrl, 'http://localhost:3000')
  t.equal(config.tokenAudience, 'http://localhost:3000')
  t.same(
    [config.accessTokenTtl, config.refreshTokenTtl, config.signupTicketTtl, config.refreshReuseGrace],
    [600, 1_209_600, 600, 10],
  )
  t.same(config.signupRequiredFields, ['nickname'])
  t.equal(config.sessionPolicy, 'multi')
  t.same(config.allowedRedirectUris, [])
  t.same(Object.keys(config.providers), [], 'a provider without a client id is disabled')
})

t.test('every invalid value is reported, one line each', async (t) => {
  const problems = problemsOf({
    PORT: 'eighty',
    ACCESS_TOKEN_TTL: '-5',
    SESSION_POLICY: 'sometimes',
    SIGNUP_REQUIRED_FIELDS: 'nickname,shoe_size',
    DATABASE_URL: 'mysql://db/gateway',
    ALLOWED_REDIRECT_URIS: 'https://app.example/cb#frag,not a uri',
    GOOGLE_CLIENT_ID: 'id-without-secret',
  })
  t.equal(problems.length, 8, problems.join('\n'))
  t.match(problems.join('\n'), /PORT/)
  t.match(problems.join('\n'), /ACCESS_TOKEN_TTL/)
  t.match(problems.join('\n'), /SESSION_POLICY/)
  t.match(problems.join('\n'), /shoe_size/)
  t.match(problems.join('\n'), /DATABASE_URL/)
  t.match(problems.join('\n'), /fragment/)
  t.match(problems.join('\n'), /not an absolute URI/)
  t.match(problems.join('\n'), /GOOGLE_CLIENT_SECRET is required/)
})

t.test('production refuses development conveniences', async (t) => {
  const problems = problemsOf({
    NODE_ENV: 'production',
    PUBLIC_URL: 'http://gateway.example',
    GOOGLE_CLIENT_ID: 'id',
    GOOGLE_CLIENT_SECRET: 'secret',
    GOOGLE_ISSUER: 'http://accounts.example',
  }).join('\n')
  t.match(problems, /SIGNING_KEYS is required in production/)
  t.match(problemsOf({ NODE_ENV: 'production' }).join('\n'), /PUBLIC_URL is required in production/, 'tokens never name localhost as their issuer')
  t.match(problems, /REDIS_URL is required in production/)
  t.match(problems, /DATABASE_URL is required in production/)
  t.match(problems, /PUBLIC_URL: plain http is refused/)
  t.match(problems, /GOOGLE_ISSUER: .* must be https/)

  t.same(
    problemsOf({
      NODE_ENV: 'production',
      PUBLIC_URL: 'https://gateway.example',
      SIGNING_KEYS: '{"keys":[]}',
      REDIS_URL: 'rediss://cache.internal:6380',
      DATABASE_URL: 'postgresql://gateway@db.internal/gateway',
      GOOGLE_CLIENT_ID: 'id',
      GOOGLE_CLIENT_SECRET: 'secret',
      GOOGLE_ISSUER: 'http://127.0.0.1:9000',
      ENCRYPTION_KEYS: '{"keys":[]}',
    }),
    [],
    'https everywhere, and plain http only on loopback, is accepted',
  )
})

t.test('production keeps provider tokens only encrypted with keys of its own: ENCRYPTION_KEYS with any provider but Kakao', async (t) => {
  const production = { NODE_ENV: 'production', PUBLIC_URL: 'https://gateway.example', SIGNING_KEYS: '{"keys":[]}', REDIS_URL: 'redis://cache:6379', DATABASE_URL: 'postgresql://db/gateway' }
  const naver = { NAVER_CLIENT_ID: 'id', NAVER_CLIENT_SECRET: 'secret' }
  t.match(problemsOf({ ...production, ...naver }), [/ENCRYPTION_KEYS is required in production when naver is on/])
  t.same(problemsOf({ ...production, ...naver, ENCRYPTION_KEYS: '{"keys":[]}' }), [])
  t.same(problemsOf({ ...production, KAKAO_CLIENT_ID: 'id', KAKAO_CLIENT_SECRET: 'secret' }), [], 'Kakao unlinks with the admin key: no token is kept')
})

t.test('account events: WEBHOOK_URL needs a Standard Webhooks secret of 24 to 64 random bytes', async (t) => {
  const url = 'https://app.example/gateway-events'
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
  t.same(loadConfig({ WEBHOOK_URL: url, WEBHOOK_SECRET: secret }).webhook, { url, key: Buffer.alloc(32, 7) })
  t.equal(loadConfig({}).webhook, undefined, 'no URL, no events')
  for (const [what, bad] of [
    ['missing', undefined],
    ['without the whsec_ prefix', Buffer.alloc(32, 7).toString('base64')],
    ['too short', `whsec_${Buffer.alloc(16, 7).toString('base64')}`],
    ['not base64', 'whsec_not*base64!'],
  ] as const) {
    t.match(problemsOf({ WEBHOOK_URL: url, ...(bad === undefined ? {} : { WEBHOOK_SECRET: bad }) }), [/WEBHOOK_SECRET must be "whsec_"/], what)
  }
  t.match(problemsOf({ WEBHOOK_SECRET: secret }), [/WEBHOOK_SECRET is set without WEBHOOK_URL/])
  t.match(problemsOf({ NODE_ENV: 'production', WEBHOOK_URL: 'http://app.example/events', WEBHOOK_SECRET: secret }).join('\n'), /WEBHOOK_URL: plain http is refused/)
  t.match(problemsOf({ JOB_RETRY_HOURS: '1', JOB_CONCURRENCY: '-1' }), [/JOB_CONCURRENCY/, /JOB_RETRY_HOURS must be a whole number from 24/])
})

t.test('a Redis URL the gateway cannot use is refused at start-up', async (t) => {
  t.match(problemsOf({ REDIS_URL: 'redis+sentinel://sentinel.internal:26379/mymaster' }).join('\n'), /REDIS_URL must be a redis:\/\/ .* Sentinels in REDIS_SENTINELS/)
  t.same(problemsOf({ REDIS_URL: 'rediss://cache.internal:6380' }), [])
})

t.test('a Redis Cluster or a Sentinel group is given instead of REDIS_URL', async (t) => {
  const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'redis-a.internal:7000, 10.0.0.2:7001,[fd00::3]:7002' })
  t.same(cluster.redisClusterNodes, [
    { host: 'redis-a.internal', port: 7000 },
    { host: '10.0.0.2', port: 7001 },
    { host: 'fd00::3', port: 7002 },
  ])
  t.equal(cluster.redisUrl, undefined)
  const sentinel = loadConfig({ REDIS_SENTINELS: 'sentinel-1:26379,sentinel-2:26379', REDIS_SENTINEL_NAME: 'gateway' })
  t.same(sentinel.redisSentinel, { sentinels: [{ host: 'sentinel-1', port: 26379 }, { host: 'sentinel-2', port: 26379 }], name: 'gateway' })

  t.match(
    problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_CLUSTER_NODES: 'redis-a:7000' }).join('\n'),
    /REDIS_URL, REDIS_CLUSTER_NODES: set only one/,
  )
  t.match(
    problemsOf({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway' }).join('\n'),
    /REDIS_CLUSTER_NODES, REDIS_SENTINELS: set only one/,
  )
  const bad = problemsOf({ REDIS_CLUSTER_NODES: 'redis-a,redis-b:0,redis-c:99999,redis-d:7000', REDIS_SENTINELS: 's:26379' })
  t.same(bad, [
    'REDIS_CLUSTER_NODES: "redis-a" is not a host:port pair',
    'REDIS_CLUSTER_NODES: "redis-b:0" is not a host:port pair',
    'REDIS_CLUSTER_NODES: "redis-c:99999" is not a host:port pair',
    'REDIS_SENTINELS needs REDIS_SENTINEL_NAME, the name of the master the Sentinels watch',
    'REDIS_CLUSTER_NODES, REDIS_SENTINELS: set only one (one Redis: REDIS_URL; one Cluster: REDIS_CLUSTER_NODES; one Sentinel group: REDIS_SENTINELS)',
  ])
  t.match(problemsOf({ REDIS_SENTINEL_NAME: 'gateway' }).join('\n'), /REDIS_SENTINEL_NAME is set without REDIS_SENTINELS/)
  t.match(
    problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway' }).join('\n'),
    /REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS: set only one/,
  )

  const production = { NODE_ENV: 'production', PUBLIC_URL: 'https://gateway.example', SIGNING_KEYS: '{"keys":[]}', DATABASE_URL: 'postgresql://db.internal/gateway' }
  t.same(problemsOf({ ...production, REDIS_CLUSTER_NODES: 'redis-a:7000' }), [], 'a Cluster is enough in production')
  t.same(problemsOf({ ...production, REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway' }), [], 'so is a Sentinel group')
})

t.test("a Cluster's or a Sentinel group's passwords: REDIS_PASSWORD (REDIS_USERNAME), REDIS_SENTINEL_PASSWORD (REDIS_SENTINEL_USERNAME)", async (t) => {
  const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_USERNAME: 'gateway', REDIS_PASSWORD: 'node-secret' })
  t.same(cluster.redisCredentials, { username: 'gateway', password: 'node-secret' })
  const sentinel = loadConfig({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway', REDIS_PASSWORD: 'server-secret', REDIS_SENTINEL_PASSWORD: 'sentinel-secret' })
  t.same(sentinel.redisCredentials, { password: 'server-secret' }, 'the default user when no REDIS_USERNAME')
  t.same(sentinel.redisSentinel?.credentials, { password: 'sentinel-secret' })
  t.equal(loadConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000' }).redisCredentials, undefined, 'none by default')

  t.same(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_PASSWORD: 'secret' }), [
    'REDIS_USERNAME and REDIS_PASSWORD are for REDIS_CLUSTER_NODES or REDIS_SENTINELS; one Redis takes them in REDIS_URL (redis://user:password@host:6379)',
  ])
  t.match(problemsOf({ REDIS_PASSWORD: 'secret' }).join('\n'), /REDIS_PASSWORD are for REDIS_CLUSTER_NODES or REDIS_SENTINELS/, 'nor for the local development redis-server')
  t.same(problemsOf({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_USERNAME: 'gateway' }), ['REDIS_USERNAME needs REDIS_PASSWORD'])
  t.same(problemsOf({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_SENTINEL_PASSWORD: 'secret' }), ['REDIS_SENTINEL_USERNAME and REDIS_SENTINEL_PASSWORD are for the Sentinels of REDIS_SENTINELS'])
  t.same(problemsOf({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway', REDIS_SENTINEL_USERNAME: 'watcher' }), ['REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD'])
  t.notMatch(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_PASSWORD: 'do-not-print-me' }).join('\n'), /do-not-print-me/, 'a problem never shows the password')
})

t.test('TLS to Redis: REDIS_TLS for a Cluster or a Sentinel group, rediss:// for one server; REDIS_TLS_CA_FILE only with TLS', async (t) => {
  t.equal(loadConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000' }).redisTls, false, 'off by default')
  const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_TLS: 'true', REDIS_TLS_CA_FILE: '/run/secrets/redis-ca.pem' })
  t.same([cluster.redisTls, cluster.redisTlsCaFile], [true, '/run/secrets/redis-ca.pem'])
  t.same(problemsOf({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway', REDIS_TLS: 'true' }), [])
  t.same(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_TLS_CA_FILE: '/run/secrets/redis-ca.pem' }), [], 'an authority for rediss://')

  t.same(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_TLS: 'true' }), ['REDIS_TLS is for REDIS_CLUSTER_NODES or REDIS_SENTINELS; one Redis takes TLS as a rediss:// REDIS_URL'])
  t.same(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_TLS_CA_FILE: '/ca.pem' }), ['REDIS_TLS_CA_FILE needs TLS to Redis: REDIS_TLS=true, or a rediss:// REDIS_URL'])
  t.same(problemsOf({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_TLS_CA_FILE: '/ca.pem' }), ['REDIS_TLS_CA_FILE needs TLS to Redis: REDIS_TLS=true, or a rediss:// REDIS_URL'])
  t.same(problemsOf({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_TLS: 'yes' }), ['REDIS_TLS must be true or false, got "yes"'])
})

t.test('a client certificate for Redis: REDIS_TLS_CERT_FILE with REDIS_TLS_KEY_FILE, only with TLS', async (t) => {
  const files = { REDIS_TLS_CERT_FILE: '/run/secrets/redis-client.crt', REDIS_TLS_KEY_FILE: '/run/secrets/redis-client.key' }
  t.same(loadConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_TLS: 'true', ...files }).redisTlsClientCertificate, {
    certFile: '/run/secrets/redis-client.crt',
    keyFile: '/run/secrets/redis-client.key',
  })
  t.same(problemsOf({ REDIS_URL: 'rediss://cache:6380', ...files }), [], 'one Redis over rediss://')
  t.equal(loadConfig({ REDIS_URL: 'rediss://cache:6380' }).redisTlsClientCertificate, undefined, 'none by default')

  const together = 'REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: the client certificate Redis asks for, and its private key'
  t.same(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_TLS_CERT_FILE: files.REDIS_TLS_CERT_FILE }), [together])
  t.same(problemsOf({ REDIS_URL: 'rediss://cache:6380', REDIS_TLS_KEY_FILE: files.REDIS_TLS_KEY_FILE }), [together])
  const needsTls = 'REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE need TLS to Redis: REDIS_TLS=true, or a rediss:// REDIS_URL'
  t.same(problemsOf({ REDIS_URL: 'redis://cache:6379', ...files }), [needsTls])
  t.same(problemsOf({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'gateway', ...files }), [needsTls])
})

t.test('REDIS_TLS_RELOAD_SECONDS: the TLS files are checked for a renewal every minute by default; 0 never', async (t) => {
  t.equal(loadConfig({}).redisTlsReloadSeconds, 60)
  t.equal(loadConfig({ REDIS_TLS_RELOAD_SECONDS: '0' }).redisTlsReloadSeconds, 0)
  t.equal(loadConfig({ REDIS_TLS_RELOAD_SECONDS: '300' }).redisTlsReloadSeconds, 300)
  for (const value of ['-1', '86401', 'hourly']) {
    t.match(problemsOf({ REDIS_TLS_RELOAD_SECONDS: value }).join('\n'), /REDIS_TLS_RELOAD_SECONDS must be a whole number from 0 to 86400/, value)
  }
})

t.test('REDIS_WAIT_REPLICAS: a whole number of replicas, 0 by default, and only where replicas can exist', async (t) => {
  t.equal(loadConfig({}).redisWaitReplicas, 0)
  t.equal(loadConfig({ REDIS_CLUSTER_NODES: 'redis-a:7000', REDIS_WAIT_REPLICAS: '1' }).redisWaitReplicas, 1)
  t.match(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_WAIT_REPLICAS: 'one' }).join('\n'), /REDIS_WAIT_REPLICAS must be a whole number from 0/)
  t.match(problemsOf({ REDIS_URL: 'redis://cache:6379', REDIS_WAIT_REPLICAS: '-1' }).join('\n'), /REDIS_WAIT_REPLICAS must be a whole number from 0/)
  t.match(problemsOf({ REDIS_WAIT_REPLICAS: '1' }).join('\n'), /REDIS_WAIT_REPLICAS needs a Redis with replicas/, 'the local development redis-server has none')
})

t.test('REDIS_COMMAND_TIMEOUT_MS: 1500 ms by default; only longer, up to two minutes', async (t) => {
  t.equal(loadConfig({}).redisCommandTimeoutMs, 1500)
  t.equal(loadConfig({ REDIS_COMMAND_TIMEOUT_MS: '5000' }).redisCommandTimeoutMs, 5000)
  for (const value of ['1000', '120001', 'soon']) {
    t.match(problemsOf({ REDIS_COMMAND_TIMEOUT_MS: value }).join('\n'), /REDIS_COMMAND_TIMEOUT_MS must be a whole number from 1500 to 120000/, value)
  }
})

t.test('limits on what one client or user can hold have defaults and bounds', async (t) => {
  const config = loadConfig({})
  t.same([config.maxSessionsPerUser, config.requestTimeout, config.maxConnectionsPerIp], [50, 10, 256])
  const problems = problemsOf({ MAX_SESSIONS_PER_USER: '0', REQUEST_TIMEOUT: 'forever', MAX_CONNECTIONS_PER_IP: '-1' }).join('\n')
  t.match(problems, /MAX_SESSIONS_PER_USER must be a whole number/)
  t.match(problems, /REQUEST_TIMEOUT must be a whole number/)
  t.match(problems, /MAX_CONNECTIONS_PER_IP must be a whole number/)
})

t.test('npm start with a bad configuration prints the problems and exits 1', async (t) => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { PATH: process.env.PATH, PORT: 'x', SESSION_POLICY: 'none' },
    encoding: 'utf8',
    timeout: 30_000,
  })
  t.equal(result.status, 1)
  const lines = result.stderr.trim().split('\n')
  t.same(
    lines.map((line) => line.split(':')[0]),
    ['configuration', 'configuration'],
    'one line per problem',
  )
  t.match(result.stderr, /PORT must be a whole number/)
  t.match(result.stderr, /SESSION_POLICY must be "multi" or "single"/)
})
