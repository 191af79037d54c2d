// The services the composition root (gateway.ts) builds and the HTTP app hands, each route
// plugin only the ones it names (app.ts registers them).

import type { Administration } from './admin/administration.js'
import type { AuditTrail } from './admin/audit-trail.js'
import type { ForcedLogout } from './admin/forced-logout.js'
import type { AuditLog } from './audit/audit-log.js'
import type { ClientCredentialsGrant } from './clients/client-credentials.js'
import type { ClientDirectory } from './clients/client-directory.js'
import type { TokenIntrospection } from './clients/introspection.js'
import type { Config } from './config.js'
import type { UserDirectory } from './identity/users.js'
import type { LoginService } from './login/login.js'
import type { IdentityLinks } from './identity/identity-links.js'
import type { AccountDeletion } from './identity/account-deletion.js'
import type { ProviderRevocations } from './identity/provider-revocations.js'
import type { GatewayMetrics } from './metrics/gateway-metrics.js'
import type { ProviderRegistry } from '../providers/registry.js'
import type { RefreshSessions } from './sessions/refresh-sessions.js'
import type { SessionTokens } from './sessions/session-tokens.js'
import type { SignupService } from './signup/signup.js'
import type { RedisClient } from './storage/redis.js'
import type { AccessTokens } from './tokens/access-tokens.js'
import type { SigningKeySet } from './tokens/signing-keys.js'
import type { BrowserPolicy } from './http/browser.js'

export interface GatewayServices {
  config: Config
  keys: SigningKeySet
  providers: ProviderRegistry
  accessTokens: AccessTokens
  sessions: RefreshSessions
  sessionTokens: SessionTokens
  users: UserDirectory
  links: IdentityLinks
  accountDeletion: AccountDeletion
  revocations: ProviderRevocations
  login: LoginService
  signup: SignupService
  browser: BrowserPolicy
  audit: AuditLog
  /** Machine-to-machine clients and their grants. */
  clients: ClientDirectory
  clientCredentials: ClientCredentialsGrant
  introspection: TokenIntrospection
  forcedLogout: ForcedLogout
  auditTrail: AuditTrail
  /** What operators do to clients, roles and users, audited. */
  administration: Administration
  /** The Redis connection the rate limiter counts in. */
  redis: RedisClient
  /** Each check resolves when its dependency answers. */
  readiness: Record<string, () => Promise<unknown>>
  /** The Prometheus series; undefined when METRICS_PORT is unset. */
  metrics?: GatewayMetrics
}
