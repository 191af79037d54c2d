// Token introspection (RFC 7662) for resource servers that do not share the gateway's
// Redis: is this access token active right now — genuine, unexpired, and (for a user's
// token) its session not ended? Only authenticated clients may ask (§2.1), and an inactive
// answer says nothing more than `active: false` (§2.2).
//
// A client learns only about tokens meant for it (§4): tokens whose audience is a resource
// it is granted something on, and its own client_credentials tokens. Any other token is
// answered exactly as an invalid one, so asking cannot reveal who is logged in where or
// what another client may do.

import type { JWTPayload } from 'jose'
import type { RefreshSessions } from '../sessions/refresh-sessions.js'
import type { AccessTokens } from '../tokens/access-tokens.js'
import { InvalidClient } from '../common/errors.js'
import type { AuthenticatedClient, ClientCredentials, ClientDirectory } from './client-directory.js'

export type IntrospectionResponse =
  | { active: false }
  | {
      active: true
      token_type: 'Bearer'
      sub: string
      aud: string | string[]
      iss: string
      exp: number
      iat: number
      jti: string
      scope?: string
      client_id?: string
      sid?: string
    }

export class TokenIntrospection {
  constructor(
    private readonly clients: Pick<ClientDirectory, 'authenticate' | 'scopesOn'>,
    private readonly accessTokens: Pick<AccessTokens, 'inspect'>,
    private readonly sessions: Pick<RefreshSessions, 'isActive'>,
  ) {}

  /** §2.1: who is asking comes first; the caller's budget is counted per client from here on. */
  async authenticateCaller(credentials: ClientCredentials | undefined): Promise<AuthenticatedClient> {
    if (!credentials) throw new InvalidClient('introspection needs client authentication (HTTP Basic, or client_id and client_secret in the body)')
    return this.clients.authenticate(credentials)
  }

  async introspect(caller: AuthenticatedClient, token: string): Promise<IntrospectionResponse> {
    // Refresh tokens, forgeries, other issuers' tokens and expired ones are all just inactive.
    const claims = await this.accessTokens.inspect(token).catch(() => undefined)
    if (!claims || !(await this.mayLearnAbout(caller, claims))) return { active: false }
    const { sub, sid, aud, iss, exp, iat, jti, scope, client_id: clientId } = claims
    if (typeof sid === 'string' && !(await this.sessions.isActive(String(sub), sid))) return { active: false }
    return {
      active: true,
      token_type: 'Bearer',
      sub: String(sub),
      aud: aud!,
      iss: iss!,
      exp: exp!,
      iat: iat!,
      jti: String(jti),
      ...(typeof scope === 'string' ? { scope } : {}),
      ...(typeof clientId === 'string' ? { client_id: clientId } : {}),
      ...(typeof sid === 'string' ? { sid } : {}),
    }
  }

  /** RFC 7662 §4: the caller's own client_credentials token, or one for a resource the caller is granted. */
  private async mayLearnAbout(caller: AuthenticatedClient, claims: JWTPayload): Promise<boolean> {
    const ownToken = claims.sid === undefined && claims.client_id === caller.clientId && claims.sub === caller.clientId
    if (ownToken) return true
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? [])
    for (const audience of audiences) {
      if (((await this.clients.scopesOn(caller.clientId, audience)) ?? []).length > 0) return true
    }
    return false
  }
}
