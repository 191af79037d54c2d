// Composition root: opens the stores, loads keys and providers, and wires the domain
// services into the HTTP app. Start-up fails loudly rather than running half-configured.

import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { buildApp } from './app.js'
import type { GatewayServices } from './services.js'
import { Administration } from './admin/administration.js'
import { AuditTrail } from './admin/audit-trail.js'
import { ForcedLogout } from './admin/forced-logout.js'
import { RoleDirectory } from './admin/roles.js'
import { UserLookup } from './admin/user-lookup.js'
import { AuditLog } from './audit/audit-log.js'
import { ClientCredentialsGrant } from './clients/client-credentials.js'
import { ClientDirectory } from './clients/client-directory.js'
import { TokenIntrospection } from './clients/introspection.js'
import type { Config } from './config.js'
import { BrowserPolicy } from './http/browser.js'
import { buildMetricsApp } from './http/metrics.js'
import { UserScopes } from './identity/user-scopes.js'
import { UserDirectory } from './identity/users.js'
import { IdentityLinks } from './identity/identity-links.js'
import { AccountDeletion } from './identity/account-deletion.js'
import { ProviderRevocations } from './identity/provider-revocations.js'
import { loadGrantVault } from './identity/grant-vault.js'
import { providerCleanup, PROVIDER_CLEANUP } from './identity/provider-cleanup.js'
import { ACCOUNT_EVENT, AccountEvents } from './events/account-events.js'
import { webhookDelivery } from './events/webhook-delivery.js'
import { JobQueue } from './jobs/job-queue.js'
import { JobWorker, type JobHandler } from './jobs/job-worker.js'
import { LoginService } from './login/login.js'
import { LoginTransactions } from './login/login-transactions.js'
import { UsedIdTokens } from './login/used-id-tokens.js'
import { GatewayMetrics } from './metrics/gateway-metrics.js'
import { ProviderRegistry } from '../providers/registry.js'
import { RefreshRotation } from './sessions/refresh-rotation.js'
import { RefreshSessions } from './sessions/refresh-sessions.js'
import { SessionStore } from './sessions/session-store.js'
import { SessionTokens } from './sessions/session-tokens.js'
import { SignupService } from './signup/signup.js'
import { SignupTickets } from './signup/signup-tickets.js'
import { openDatabase, type Database } from './storage/database.js'
import { startLocalRedis, type LocalRedis } from './storage/local-redis.js'
import { LOST_DATA_MESSAGE, watchForLostData } from './storage/lost-data.js'
import { replicaWarnings } from './storage/replica-count.js'
import { connectRedis, loadRedisTls, type RedisClient, type RedisTls, type RedisTarget } from './storage/redis.js'
import { renewRedisTls } from './storage/redis-tls-renewal.js'
import { clientCertificateValidity, watchClientCertificateExpiry } from './storage/redis-tls-expiry.js'
import { AccessTokens } from './tokens/access-tokens.js'
import { loadSigningKeys } from './tokens/signing-keys.js'

export interface Gateway {
  app: FastifyInstance
  /** What the app was built from (operator scripts and tests reach the domain through it). */
  services: GatewayServices
  redis: RedisClient
  database: Database
  /** The Prometheus listener (GET /metrics), to listen on METRICS_PORT; undefined when it is unset. */
  metricsApp?: FastifyInstance
  close(): Promise<void>
}

/** How often idle job loops look for due jobs (retries, and jobs other instances wrote). */
const JOB_POLL_MS = 1000

export async function createGateway(config: Config, logger: FastifyServerOptions['logger'] = true): Promise<Gateway> {
  const keys = await loadSigningKeys(config)
  const vault = await loadGrantVault(config)
  // The database first: opening the embedded one takes the data folder's lock, so a second
  // gateway on the same DATA_DIR stops here, before it starts a local redis-server over the
  // first one's Redis files.
  const database: Database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
  let localRedis: LocalRedis | undefined
  // Connection problems after start-up go to the app's logger (redacted, silenced in tests);
  // a failure to connect at start-up is thrown instead.
  let app: FastifyInstance | undefined
  let redis: RedisClient
  let stopTlsRenewal = () => {}
  let tls: RedisTls | undefined
  let replicaMismatches: string[] = []
  try {
    const { redisCredentials: credentials, redisSentinel: sentinel } = config
    const tlsSettings = { tls: config.redisTls, caFile: config.redisTlsCaFile, clientCertificate: config.redisTlsClientCertificate }
    tls = await loadRedisTls(tlsSettings)
    const redisTarget: RedisTarget = config.redisClusterNodes
      ? { clusterNodes: config.redisClusterNodes, credentials, tls }
      : sentinel
        ? { sentinels: sentinel.sentinels, sentinelName: sentinel.name, credentials, sentinelCredentials: sentinel.credentials, tls }
        : { url: config.redisUrl ?? (localRedis = await startLocalRedis(config.dataDir)).url, tls }
    redis = await connectRedis(redisTarget, { warn: (object, message) => app?.log.warn(object, message) }, config.redisCommandTimeoutMs)
    if (!localRedis) replicaMismatches = await replicaWarnings(redis, config.redisWaitReplicas, 'sentinels' in redisTarget)
    if (tls && config.redisTlsReloadSeconds > 0) {
      stopTlsRenewal = renewRedisTls(tls, tlsSettings, config.redisTlsReloadSeconds, {
        info: (object, message) => app?.log.info(object, message),
        warn: (object, message) => app?.log.warn(object, message),
      })
    }
  } catch (error) {
    localRedis?.stop()
    await database.close().catch(() => {})
    throw error
  }

  // One registry object, handed to each observed part: nothing imports a global one.
  const metrics = config.metricsPort === undefined ? undefined : new GatewayMetrics({ providers: Object.keys(config.providers) })
  const providers = new ProviderRegistry(config, metrics)
  const accessTokens = new AccessTokens(keys, { issuer: config.publicUrl, audience: config.tokenAudience, ttlSeconds: config.accessTokenTtl, appClientId: config.appClientId })
  const warnings = { warn: (object: unknown, message: string) => app?.log.warn(object, message) }
  const audit = new AuditLog(database, warnings, metrics)
  const jobs = new JobQueue(database.prisma)
  metrics?.watchQueue(() => jobs.waiting())
  const clientTls = tls?.cert === undefined ? undefined : tls
  if (clientTls) metrics?.watchRedisClientCertificate(() => clientCertificateValidity(clientTls)?.notAfter)
  const events = new AccountEvents(config.webhook !== undefined, jobs, warnings)
  const sessions = new RefreshSessions(
    new SessionStore(redis, config.redisWaitReplicas),
    new RefreshRotation(redis, config.redisWaitReplicas, config, audit, events),
    config,
    audit,
    events,
  )
  const scopes = new UserScopes(database.prisma, redis, { ownResource: config.tokenAudience, cacheTtlSeconds: config.scopeCacheTtl })
  const sessionTokens = new SessionTokens(sessions, accessTokens, scopes)
  const users = new UserDirectory(database, events)
  const links = new IdentityLinks({ users, vault, audit })
  const usedIdTokens = new UsedIdTokens(redis)
  const accountDeletion = new AccountDeletion({ prisma: database.prisma, sessions, audit, events })
  const tickets = new SignupTickets(redis, config.signupTicketTtl)
  const clients = new ClientDirectory(database.prisma)
  const auditTrail = new AuditTrail(users, audit)
  const services: GatewayServices = {
    config,
    keys,
    providers,
    accessTokens,
    sessions,
    sessionTokens,
    users,
    links,
    accountDeletion,
    revocations: new ProviderRevocations({ prisma: database.prisma, sessions, deletion: accountDeletion, audit, usedTokens: usedIdTokens, lastIdentityRevoked: config.lastIdentityRevoked, events }),
    login: new LoginService({
      providers,
      links,
      transactions: new LoginTransactions(redis, config.loginTransactionTtl),
      scopes,
      usedIdTokens,
      users,
      tickets,
      sessionTokens,
      allowedRedirectUris: config.allowedRedirectUris,
      signupRequiredFields: config.signupRequiredFields,
      publicUrl: config.publicUrl,
      webOrigins: config.webOrigins,
      observer: metrics,
    }),
    signup: new SignupService({ tickets, users, scopes, sessionTokens, signupRequiredFields: config.signupRequiredFields }),
    browser: new BrowserPolicy(config),
    audit,
    clients,
    clientCredentials: new ClientCredentialsGrant(clients, accessTokens, config.tokenAudience),
    introspection: new TokenIntrospection(clients, accessTokens, sessions),
    forcedLogout: new ForcedLogout(users, sessions),
    auditTrail,
    administration: new Administration({ clients, roles: new RoleDirectory(database.prisma, audit), users: new UserLookup(database.prisma), auditTrail, audit }),
    redis,
    readiness: {
      // A write, not a PING: a Redis at maxmemory under noeviction still answers PING while
      // refusing every write that logins and refreshes need. The probe key expires by itself.
      redis: () => redis.set('gw:readiness-probe', '1', 'PX', 10_000),
      database: () => database.ping(),
    },
    metrics,
  }
  app = await buildApp(services, logger)
  for (const mismatch of replicaMismatches) app.log.warn(mismatch)
  const stopExpiryWatch = clientTls ? watchClientCertificateExpiry(clientTls, warnings) : () => {}
  const stopLostDataWatch = await watchForLostData(redis, () => {
    metrics?.redisDataLost()
    app?.log.error(LOST_DATA_MESSAGE)
  })
  const metricsApp = metrics && buildMetricsApp(metrics)
  const handlers: Record<string, JobHandler> = { [PROVIDER_CLEANUP]: providerCleanup(providers, vault) }
  if (config.webhook) handlers[ACCOUNT_EVENT] = webhookDelivery(config.webhook)
  const worker = new JobWorker(jobs, handlers, audit, warnings, {
    ...config.jobs,
    // Longer than a handler can take (two provider calls, or one webhook POST), so a job is never delivered twice at once.
    leaseMs: (config.providerHttpTimeoutSeconds * 2 + 30) * 1000,
    pollMs: JOB_POLL_MS,
  })
  worker.start()
  return {
    app,
    services,
    redis,
    database,
    metricsApp,
    async close() {
      stopTlsRenewal()
      stopExpiryWatch()
      stopLostDataWatch()
      await app.close()
      await worker.stop()
      await metricsApp?.close()
      redis.disconnect()
      await database.close()
      localRedis?.stop()
    },
  }
}
