// The admin credential: a machine-to-machine access token (client_credentials) for the
// gateway's own audience that carries the `admin` scope, from a client that still holds
// that grant. User tokens are refused whatever scopes they carry: operators act through
// clients they created with the CLI. A refusal of a known party (a genuine token of ours,
// whatever its audience) is written to the audit trail; one without a credential we can
// verify is only counted (see AuditLog.countAnonymous), so anonymous noise cannot grow it.

import type { FastifyRequest } from 'fastify'
import type { AuditLog } from '../audit/audit-log.js'
import type { ClientDirectory } from '../clients/client-directory.js'
import { InsufficientScope, InvalidToken } from '../common/errors.js'
import type { AccessTokens, VerifiedClientToken } from '../tokens/access-tokens.js'
import { bearerTokenOf } from './bearer.js'
import { originOf } from './browser.js'

export const ADMIN_SCOPE = 'admin'

declare module 'fastify' {
  interface FastifyRequest {
    adminClient?: VerifiedClientToken
  }
}

export interface AdminCredentialServices {
  accessTokens: Pick<AccessTokens, 'verify' | 'verifyClient' | 'inspect'>
  clients: Pick<ClientDirectory, 'scopesOn'>
  audit: Pick<AuditLog, 'record' | 'countAnonymous'>
  /** TOKEN_AUDIENCE: the gateway's own resource, where the admin scope is granted. */
  ownResource: string
}

/** A hook for admin routes: sets `request.adminClient` or refuses (401 invalid_token, 403 insufficient_scope). */
export function requireAdminClient(services: AdminCredentialServices) {
  return async (request: FastifyRequest): Promise<void> => {
    const caller: Caller = {}
    try {
      request.adminClient = await admit(request, services, caller)
    } catch (error) {
      if (!(error instanceof InvalidToken || error instanceof InsufficientScope)) throw error
      if (caller.actor === undefined) {
        services.audit.countAnonymous({ action: 'admin.denied', ip: request.ip })
      } else {
        const target = (request.params as { userId?: unknown } | undefined)?.userId
        await services.audit.record({
          action: 'admin.denied',
          userId: typeof target === 'string' ? target.slice(0, 100) : undefined,
          actor: caller.actor,
          outcome: 'denied',
          ...originOf(request),
        })
      }
      throw error
    }
  }
}

/** Who made the request, once a genuine token of ours names them; unset while nobody is known. */
interface Caller {
  actor?: string
}

async function admit(request: FastifyRequest, services: AdminCredentialServices, caller: Caller): Promise<VerifiedClientToken> {
  const token = bearerTokenOf(request)
  if (token === undefined) throw new InvalidToken('an admin client access token is required')

  let client: VerifiedClientToken
  try {
    client = await services.accessTokens.verifyClient(token)
  } catch (error) {
    // Not an admin credential. A genuine token of ours still names who tried: a user token
    // for the gateway is authenticated but not allowed here (RFC 6750 §3.1: 403), a token
    // for another resource is not one for us (401). Anything else names nobody (401).
    const claims = await services.accessTokens.inspect(token).catch(() => undefined)
    if (claims === undefined) throw error
    caller.actor = typeof claims.sid === 'string' ? `user:${String(claims.sub)}` : `client:${String(claims.client_id ?? claims.sub)}`
    const user = await services.accessTokens.verify(token).catch(() => undefined)
    if (user === undefined) throw error
    throw new InsufficientScope('the admin endpoints take a client token, not a user token', ADMIN_SCOPE)
  }
  caller.actor = `client:${client.clientId}`
  if (!client.scopes.includes(ADMIN_SCOPE)) throw new InsufficientScope('this client token does not carry the admin scope', ADMIN_SCOPE)

  // Read on every call, so deleting the client or revoking its grant takes effect at once,
  // not when its last token expires.
  const held = await services.clients.scopesOn(client.clientId, services.ownResource)
  if (held === undefined) throw new InvalidToken('the client of this access token no longer exists')
  if (!held.includes(ADMIN_SCOPE)) throw new InsufficientScope('this client no longer holds the admin scope', ADMIN_SCOPE)
  return client
}
