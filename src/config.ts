// Configuration is read from the environment once, at start-up, into a typed object.
// Nothing else in the gateway reads process.env. Every problem found is reported,
// one line each, before start-up stops.

import { providerDefinitionsFor, type ConfiguredProvider } from '../providers/registry.js'
import { splitList } from './common/env-values.js'
import { ConfigError } from './common/errors.js'
import { PROFILE_FIELDS, type ProfileField } from './common/profile-text.js'
import { isLoopbackUrl } from './common/loopback.js'
import { DEFAULT_COMMAND_TIMEOUT_MS, type HostPort, type RedisCredentials } from './storage/redis.js'
import type { SigningAlgorithm } from './tokens/signing-keys.js'

const SIGNING_ALGORITHM_CHOICES = ['ES256', 'RS256', 'EdDSA'] as const satisfies readonly SigningAlgorithm[]

export interface Config {
  production: boolean
  port: number
  host: string
  /** Base URL of the gateway, without a trailing slash; the `iss` of our tokens. */
  publicUrl: string
  /** postgresql:// URL, or undefined for the embedded PGlite database under dataDir. */
  databaseUrl?: string
  /** Where the embedded database and generated development keys live. */
  dataDir: string
  /** undefined (and no Cluster or Sentinel): the gateway starts a local redis-server itself (development only). */
  redisUrl?: string
  /** Seed nodes of a Redis Cluster, instead of redisUrl. */
  redisClusterNodes?: HostPort[]
  /** Sentinels and the name of the master they watch, instead of redisUrl; `credentials`: the Sentinels' own (REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD). */
  redisSentinel?: { sentinels: HostPort[]; name: string; credentials?: RedisCredentials }
  /** REDIS_USERNAME, REDIS_PASSWORD: the servers' AUTH for a Cluster or a Sentinel group (REDIS_URL carries its own). */
  redisCredentials?: RedisCredentials
  /** REDIS_TLS: a Cluster's or a Sentinel group's connections over TLS (REDIS_URL says rediss:// instead). */
  redisTls: boolean
  /** REDIS_TLS_CA_FILE: a PEM file of the authorities to trust for Redis' certificates, instead of Node's public ones. */
  redisTlsCaFile?: string
  /** REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: the certificate the gateway shows a Redis that asks for one (tls-auth-clients), and its key. */
  redisTlsClientCertificate?: { certFile: string; keyFile: string }
  /** REDIS_TLS_RELOAD_SECONDS: how often the TLS files are checked for a renewal (0: never). */
  redisTlsReloadSeconds: number
  /** Replicas that must hold a session start, end or rotation before it is answered (Redis WAIT); 0: no waiting. */
  redisWaitReplicas: number
  /** REDIS_COMMAND_TIMEOUT_MS: a Redis call unanswered this long answers 503. */
  redisCommandTimeoutMs: number
  accessTokenTtl: number
  refreshTokenTtl: number
  /** Absolute lifetime of a session, however often it is refreshed. */
  sessionMaxAge: number
  signupTicketTtl: number
  /** Seconds a started login (state, PKCE verifier, nonce) waits for the provider's answer. */
  loginTransactionTtl: number
  /** Seconds a user's cached scopes stay in Redis after their last re-read (memory of idle users). */
  scopeCacheTtl: number
  /**
   * 0: strict rotation (the live token's predecessor is reuse too). Otherwise the predecessor
   * keeps answering with the same successor until that successor is used, so a lost answer
   * never costs the session.
   */
  refreshReuseGrace: number
  tokenAudience: string
  /** Raw SIGNING_KEYS (JWK set JSON or a file path); undefined: generate and persist in dev. */
  signingKeys?: string
  /** LAST_IDENTITY_REVOKED: a provider revoked a user's only identity: delete the account, or keep it without identities. */
  lastIdentityRevoked: 'delete' | 'keep'
  /** Raw ENCRYPTION_KEYS (JWK set of 256-bit oct keys, JSON or a file path); undefined: generate and persist in dev. */
  encryptionKeys?: string
  /** SIGNING_ALGORITHM: the type of the generated development key, and what SIGNING_KEYS' first key must be when set. */
  signingAlgorithm?: SigningAlgorithm
  /** The `client_id` of users' access tokens (RFC 9068 §2.2): the apps that log users in, as one client. */
  appClientId: string
  signupRequiredFields: ProfileField[]
  sessionPolicy: 'multi' | 'single'
  /** Live sessions per user; a login beyond it ends the least recently used one. */
  maxSessionsPerUser: number
  /** Refreshes one session may make per minute; counted in the session, so a shared (NAT) address does not matter. */
  refreshesPerMinute: number
  /** Seconds a request (headers and body) may take before its connection is closed. */
  requestTimeout: number
  /** Concurrent connections one client address may hold; more are closed at once. */
  maxConnectionsPerIp: number
  /** Each enabled provider, by the name clients use. */
  providers: Record<string, ConfiguredProvider>
  providerHttpTimeoutSeconds: number
  allowedRedirectUris: string[]
  /** Origins allowed to call from a browser: WEB_ORIGINS plus the gateway's own. */
  webOrigins: string[]
  logLevel: string
  /** Serve the demo web app at /demo. */
  demoPage: boolean
  /** Port of the Prometheus listener (GET /metrics, on HOST); undefined: no metrics. */
  metricsPort?: number
  /** Requests per minute, client address and route: login routes (start, code, signup, redirect flow), and logout, /oauth/token and admin (refresh is counted per session: refreshesPerMinute). */
  rateLimits: { login: number; token: number }
  /** Introspection calls per minute and authenticated client (unauthenticated attempts count per address, as `token`). */
  introspectionsPerMinute: number
  /** Proxies whose X-Forwarded-For is believed: a hop count or addresses/CIDRs; false: none. */
  trustProxy: boolean | number | string[]
  /** WEBHOOK_URL and the key inside WEBHOOK_SECRET: where account events go; undefined: no events. */
  webhook?: { url: string; key: Buffer }
  /** The job queue's delivery: loops in this instance (0: none), the first retry delay, how long to retry. */
  jobs: { concurrency: number; firstRetryDelayMs: number; retryForMs: number }
}

type Env = Record<string, string | undefined>

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = []
  const production = env.NODE_ENV === 'production'
  const read = new EnvReader(env, problems)

  const port = read.integer('PORT', 3000, 0, 65535)
  const host = read.text('HOST') ?? '127.0.0.1'
  const publicUrl = (read.url('PUBLIC_URL', production) ?? `http://localhost:${port}`).replace(/\/+$/, '')
  const databaseUrl = read.text('DATABASE_URL')
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgresql:// URL (unset it for the embedded database)')
  }
  const redisUrl = read.text('REDIS_URL')
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl) && !redisUrl.startsWith('/')) {
    problems.push('REDIS_URL must be a redis:// or rediss:// URL, or a unix socket path (a Cluster goes in REDIS_CLUSTER_NODES, Sentinels in REDIS_SENTINELS)')
  }
  const redisClusterNodes = read.hostPorts('REDIS_CLUSTER_NODES')
  const redisSentinels = read.hostPorts('REDIS_SENTINELS')
  const redisSentinelName = read.text('REDIS_SENTINEL_NAME')
  if (redisSentinels && !redisSentinelName) problems.push('REDIS_SENTINELS needs REDIS_SENTINEL_NAME, the name of the master the Sentinels watch')
  if (redisSentinelName && !redisSentinels) problems.push('REDIS_SENTINEL_NAME is set without REDIS_SENTINELS')
  const redisSettings = Object.entries({ REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: redisClusterNodes, REDIS_SENTINELS: redisSentinels })
    .filter(([, value]) => value !== undefined)
    .map(([name]) => name)
  if (redisSettings.length > 1) {
    problems.push(`${redisSettings.join(', ')}: set only one (one Redis: REDIS_URL; one Cluster: REDIS_CLUSTER_NODES; one Sentinel group: REDIS_SENTINELS)`)
  }
  const redisCredentials = readRedisCredentials(read, 'REDIS_USERNAME', 'REDIS_PASSWORD')
  if (redisCredentials && !redisClusterNodes && !redisSentinels) {
    problems.push('REDIS_USERNAME and REDIS_PASSWORD are for REDIS_CLUSTER_NODES or REDIS_SENTINELS; one Redis takes them in REDIS_URL (redis://user:password@host:6379)')
  }
  const sentinelCredentials = readRedisCredentials(read, 'REDIS_SENTINEL_USERNAME', 'REDIS_SENTINEL_PASSWORD')
  if (sentinelCredentials && !redisSentinels) problems.push('REDIS_SENTINEL_USERNAME and REDIS_SENTINEL_PASSWORD are for the Sentinels of REDIS_SENTINELS')
  const redisTls = read.flag('REDIS_TLS')
  if (redisTls && !redisClusterNodes && !redisSentinels) problems.push('REDIS_TLS is for REDIS_CLUSTER_NODES or REDIS_SENTINELS; one Redis takes TLS as a rediss:// REDIS_URL')
  const tlsToRedis = redisTls || redisUrl?.startsWith('rediss://')
  const redisTlsCaFile = read.text('REDIS_TLS_CA_FILE')
  if (redisTlsCaFile && !tlsToRedis) problems.push('REDIS_TLS_CA_FILE needs TLS to Redis: REDIS_TLS=true, or a rediss:// REDIS_URL')
  const redisTlsClientCertificate = readClientCertificateFiles(read, tlsToRedis)
  const redisTlsReloadSeconds = read.integer('REDIS_TLS_RELOAD_SECONDS', 60, 0, 86_400)
  const redisWaitReplicas = read.integer('REDIS_WAIT_REPLICAS', 0, 0, 100)
  if (redisWaitReplicas > 0 && redisSettings.length === 0) {
    problems.push('REDIS_WAIT_REPLICAS needs a Redis with replicas (REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS); the local development redis-server has none')
  }

  // Never shorter than the default: the replica acknowledgement (1 s) must fit inside it.
  const redisCommandTimeoutMs = read.integer('REDIS_COMMAND_TIMEOUT_MS', DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_COMMAND_TIMEOUT_MS, 120_000)

  const signingKeys = read.text('SIGNING_KEYS')
  const providers: Record<string, ConfiguredProvider> = {}
  for (const definition of providerDefinitionsFor(env)) {
    const settings = definition.readSettings(env, problems, production)
    if (settings === undefined) continue
    if (Object.hasOwn(providers, definition.name)) problems.push(`provider "${definition.name}" is configured twice (a generic OIDC_ provider may not reuse a built-in name)`)
    else providers[definition.name] = { definition, settings }
  }

  const lastIdentityRevoked = read.text('LAST_IDENTITY_REVOKED') ?? 'delete'
  if (lastIdentityRevoked !== 'delete' && lastIdentityRevoked !== 'keep') problems.push('LAST_IDENTITY_REVOKED must be "delete" or "keep"')

  const signupRequiredFields = read.list('SIGNUP_REQUIRED_FIELDS') ?? ['nickname']
  for (const field of signupRequiredFields) {
    if (!(PROFILE_FIELDS as readonly string[]).includes(field)) {
      problems.push(`SIGNUP_REQUIRED_FIELDS: unknown field "${field}" (allowed: ${PROFILE_FIELDS.join(', ')})`)
    }
  }
  const sessionPolicy = read.text('SESSION_POLICY') ?? 'multi'
  if (sessionPolicy !== 'multi' && sessionPolicy !== 'single') {
    problems.push('SESSION_POLICY must be "multi" or "single"')
  }

  const allowedRedirectUris = read.list('ALLOWED_REDIRECT_URIS') ?? []
  for (const uri of allowedRedirectUris) read.redirectUri('ALLOWED_REDIRECT_URIS', uri, production)
  const webOrigins = (read.list('WEB_ORIGINS') ?? []).map((origin) => {
    const url = read.checkUrl('WEB_ORIGINS', origin, false)
    return url?.origin ?? origin
  })

  const config: Config = {
    production,
    port,
    host,
    publicUrl,
    databaseUrl,
    dataDir: read.text('DATA_DIR') ?? './data',
    redisUrl,
    redisClusterNodes,
    redisSentinel: redisSentinels && redisSentinelName ? { sentinels: redisSentinels, name: redisSentinelName, ...(sentinelCredentials && { credentials: sentinelCredentials }) } : undefined,
    redisCredentials,
    redisTls,
    redisTlsCaFile,
    redisTlsClientCertificate,
    redisTlsReloadSeconds,
    redisWaitReplicas,
    redisCommandTimeoutMs,
    accessTokenTtl: read.integer('ACCESS_TOKEN_TTL', 600, 30, 86_400),
    refreshTokenTtl: read.integer('REFRESH_TOKEN_TTL', 1_209_600, 60, 31_536_000),
    sessionMaxAge: read.integer('SESSION_MAX_AGE', 7_776_000, 60, 31_536_000),
    signupTicketTtl: read.integer('SIGNUP_TICKET_TTL', 600, 30, 3_600),
    loginTransactionTtl: read.integer('LOGIN_TRANSACTION_TTL', 600, 60, 3_600),
    scopeCacheTtl: read.integer('SCOPE_CACHE_TTL', 86_400, 60, 31_536_000),
    refreshReuseGrace: read.integer('REFRESH_REUSE_GRACE', 10, 0, 300),
    tokenAudience: read.text('TOKEN_AUDIENCE') ?? publicUrl,
    signingKeys,
    encryptionKeys: read.text('ENCRYPTION_KEYS'),
    lastIdentityRevoked: lastIdentityRevoked as Config['lastIdentityRevoked'],
    signingAlgorithm: readSigningAlgorithm(read),
    appClientId: readAppClientId(read),
    signupRequiredFields: signupRequiredFields as ProfileField[],
    sessionPolicy: sessionPolicy as Config['sessionPolicy'],
    maxSessionsPerUser: read.integer('MAX_SESSIONS_PER_USER', 50, 1, 1000),
    refreshesPerMinute: read.integer('RATE_LIMIT_REFRESH', 60, 1, 1_000_000),
    introspectionsPerMinute: read.integer('RATE_LIMIT_INTROSPECTION', 60_000, 1, 100_000_000),
    requestTimeout: read.integer('REQUEST_TIMEOUT', 10, 1, 300),
    maxConnectionsPerIp: read.integer('MAX_CONNECTIONS_PER_IP', 256, 1, 1_000_000),
    providers,
    providerHttpTimeoutSeconds: read.integer('PROVIDER_HTTP_TIMEOUT', 5, 1, 30),
    allowedRedirectUris,
    webOrigins: [...new Set([...webOrigins, new URL(publicUrl).origin])],
    logLevel: read.text('LOG_LEVEL') ?? (production ? 'info' : 'debug'),
    demoPage: read.flag('DEMO_PAGE'),
    metricsPort: read.text('METRICS_PORT') === undefined ? undefined : read.integer('METRICS_PORT', 0, 1, 65535),
    rateLimits: {
      login: read.integer('RATE_LIMIT_LOGIN', 30, 1, 1_000_000),
      token: read.integer('RATE_LIMIT_TOKEN', 120, 1, 1_000_000),
    },
    trustProxy: readTrustProxy(read),
    webhook: readWebhook(read, production),
    jobs: {
      concurrency: read.integer('JOB_CONCURRENCY', 2, 0, 32),
      firstRetryDelayMs: read.integer('JOB_RETRY_DELAY_MS', 30_000, 10, 3_600_000),
      // Providers and receivers get at least a day to come back (a weekend outage: more).
      retryForMs: read.integer('JOB_RETRY_HOURS', 72, 24, 720) * 3_600_000,
    },
  }

  if (production) {
    if (!read.text('PUBLIC_URL')) problems.push('PUBLIC_URL is required in production: it is the issuer of every token and the base of every callback URL registered at the providers')
    if (!signingKeys) problems.push('SIGNING_KEYS is required in production (generated keys are refused)')
    if (redisSettings.length === 0) problems.push('REDIS_URL is required in production (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS with REDIS_SENTINEL_NAME)')
    if (!databaseUrl) problems.push('DATABASE_URL is required in production (the embedded database is for development)')
    // Provider tokens are kept (encrypted) to revoke the grant when an account is deleted;
    // Kakao's unlink needs only the admin key.
    const keepingGrants = Object.keys(providers).filter((name) => name !== 'kakao')
    if (!config.encryptionKeys && keepingGrants.length > 0) {
      problems.push(`ENCRYPTION_KEYS is required in production when ${keepingGrants.join(', ')} is on (it encrypts the provider tokens kept to revoke them when an account is deleted)`)
    }
  }
  if (config.sessionMaxAge < config.refreshTokenTtl) {
    problems.push('SESSION_MAX_AGE must be at least REFRESH_TOKEN_TTL')
  }
  if (config.metricsPort !== undefined && config.metricsPort === port) {
    problems.push('METRICS_PORT must differ from PORT (metrics are never served on the public port)')
  }

  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

/** A password and, optionally, its ACL user; a user without a password is a problem. */
function readRedisCredentials(read: EnvReader, usernameVariable: string, passwordVariable: string): RedisCredentials | undefined {
  const username = read.text(usernameVariable)
  const password = read.text(passwordVariable)
  if (username !== undefined && password === undefined) read.problem(`${usernameVariable} needs ${passwordVariable}`)
  return password === undefined ? undefined : { ...(username === undefined ? {} : { username }), password }
}

/** REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: both or neither, and only with TLS to Redis. */
function readClientCertificateFiles(read: EnvReader, tlsToRedis: boolean | undefined): Config['redisTlsClientCertificate'] {
  const certFile = read.text('REDIS_TLS_CERT_FILE')
  const keyFile = read.text('REDIS_TLS_KEY_FILE')
  if (certFile === undefined && keyFile === undefined) return undefined
  if (certFile === undefined || keyFile === undefined) {
    read.problem('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: the client certificate Redis asks for, and its private key')
    return undefined
  }
  if (!tlsToRedis) read.problem('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE need TLS to Redis: REDIS_TLS=true, or a rediss:// REDIS_URL')
  return { certFile, keyFile }
}

/** SIGNING_ALGORITHM: ES256 (the default), RS256 or EdDSA; the key type decides, this names which. */
function readSigningAlgorithm(read: EnvReader): SigningAlgorithm | undefined {
  const value = read.text('SIGNING_ALGORITHM')
  if (value === undefined || (SIGNING_ALGORITHM_CHOICES as readonly string[]).includes(value)) return value as SigningAlgorithm | undefined
  read.problem(`SIGNING_ALGORITHM must be one of ${SIGNING_ALGORITHM_CHOICES.join(', ')}, got "${value}"`)
  return undefined
}

/** APP_CLIENT_ID: a client_id is a VSCHAR string (RFC 6749 Appendix A.1); ours is a short, stable label. */
function readAppClientId(read: EnvReader): string {
  const value = read.text('APP_CLIENT_ID') ?? 'app'
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) read.problem('APP_CLIENT_ID must be 1 to 128 printable ASCII characters without spaces')
  return value
}

/** WEBHOOK_URL with WEBHOOK_SECRET, `whsec_` and base64 of 24 to 64 random bytes (Standard Webhooks). */
function readWebhook(read: EnvReader, production: boolean): Config['webhook'] {
  const url = read.url('WEBHOOK_URL', production)
  const secret = read.text('WEBHOOK_SECRET')
  if (url === undefined) {
    if (secret !== undefined && read.text('WEBHOOK_URL') === undefined) read.problem('WEBHOOK_SECRET is set without WEBHOOK_URL')
    return undefined
  }
  const key = secret?.startsWith('whsec_') && /^[A-Za-z0-9+/]+={0,2}$/.test(secret.slice(6)) ? Buffer.from(secret.slice(6), 'base64') : undefined
  if (!key || key.length < 24 || key.length > 64) {
    read.problem('WEBHOOK_SECRET must be "whsec_" followed by base64 of 24 to 64 random bytes (e.g. "whsec_$(openssl rand -base64 32)"); it signs the account events sent to WEBHOOK_URL')
    return undefined
  }
  return { url, key }
}

/** TRUST_PROXY: unset (trust no one: a client cannot pick its own address), a hop count, or addresses. */
function readTrustProxy(read: EnvReader): Config['trustProxy'] {
  const value = read.text('TRUST_PROXY')
  if (value === undefined || value === 'false') return false
  if (/^\d+$/.test(value)) return Number(value)
  return splitList(value)
}

/** Reads typed values from the environment and records one problem line per bad value. */
export class EnvReader {
  constructor(private readonly env: Env, private readonly problems: string[]) {}

  text(name: string): string | undefined {
    const value = this.env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }

  /** A problem that no single reader above describes. */
  problem(line: string): void {
    this.problems.push(line)
  }

  list(name: string): string[] | undefined {
    const value = this.text(name)
    return value === undefined ? undefined : splitList(value)
  }

  /** Comma-separated `host:port` pairs; an IPv6 host goes in brackets (`[::1]:6379`). */
  hostPorts(name: string): HostPort[] | undefined {
    const entries = this.list(name)
    if (entries === undefined) return undefined
    const addresses: HostPort[] = []
    for (const entry of entries) {
      const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(entry)
      const port = Number(match?.[3])
      if (!match || port < 1 || port > 65535) this.problems.push(`${name}: "${entry}" is not a host:port pair`)
      else addresses.push({ host: match[1] ?? match[2]!, port })
    }
    if (entries.length === 0) this.problems.push(`${name} names no host:port pair`)
    return addresses
  }

  flag(name: string): boolean {
    const value = this.text(name)
    if (value === undefined || value === 'false' || value === '0') return false
    if (value === 'true' || value === '1') return true
    this.problems.push(`${name} must be true or false, got "${value}"`)
    return false
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.text(name)
    if (value === undefined) return fallback
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      this.problems.push(`${name} must be a whole number from ${min} to ${max}, got "${value}"`)
      return fallback
    }
    return parsed
  }

  /** An http(s) URL; in production, plain http only on loopback. */
  url(name: string, production: boolean): string | undefined {
    const value = this.text(name)
    if (value === undefined) return undefined
    return this.checkUrl(name, value, production) ? value : undefined
  }

  /** Native apps may use private-use schemes (RFC 8252 §7.1); web redirect URIs follow the http(s) rules. */
  redirectUri(name: string, value: string, production: boolean): void {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      this.problems.push(`${name}: "${value}" is not an absolute URI`)
      return
    }
    if (url.hash !== '') this.problems.push(`${name}: "${value}" must not contain a fragment`)
    else if (url.protocol === 'http:' || url.protocol === 'https:') this.checkUrl(name, value, production)
  }

  checkUrl(name: string, value: string, production: boolean): URL | undefined {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      this.problems.push(`${name}: "${value}" is not a URL`)
      return undefined
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      this.problems.push(`${name}: "${value}" must be an http(s) URL`)
      return undefined
    }
    if (production && url.protocol === 'http:' && !isLoopbackUrl(url)) {
      this.problems.push(`${name}: plain http is refused in production except on loopback ("${value}")`)
      return undefined
    }
    return url
  }
}
