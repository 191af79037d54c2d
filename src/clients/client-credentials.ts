// The client_credentials grant (RFC 6749 §4.4): a client that proves who it is gets an
// access token for one resource (RFC 8707) with the scopes it asked for, each of which it
// must hold there. Read top to bottom, the rules in the order they are enforced.

import { InvalidClient, InvalidScope, InvalidTarget, UnsupportedGrantType } from '../common/errors.js'
import type { ClientTokenSubject, IssuedAccessToken } from '../tokens/access-tokens.js'
import type { ClientCredentials, ClientDirectory } from './client-directory.js'
import { isResourceIndicator, scopeTokensOf } from './scopes.js'

export interface ClientCredentialsRequest {
  /** From HTTP Basic; undefined when the request carried none. */
  credentials?: ClientCredentials
  grantType: string
  /** RFC 8707 resource indicator; default: the gateway's own audience. */
  resource?: string
  /** Space-delimited; default: every scope the client holds on the resource. */
  scope?: string
}

export interface ClientAccessToken extends IssuedAccessToken {
  /** What the token carries (RFC 6749 §5.1). */
  scope: string
}

export interface ClientTokenIssuer {
  issueForClient(subject: ClientTokenSubject): Promise<IssuedAccessToken>
}

export class ClientCredentialsGrant {
  constructor(
    private readonly clients: Pick<ClientDirectory, 'authenticate' | 'scopesOn'>,
    private readonly tokens: ClientTokenIssuer,
    /** TOKEN_AUDIENCE: the resource of a request that names none. */
    private readonly defaultResource: string,
  ) {}

  async exchange(request: ClientCredentialsRequest): Promise<ClientAccessToken> {
    // Who is asking comes first: an unauthenticated caller learns nothing about grants.
    if (request.credentials === undefined) throw new InvalidClient('client authentication is required (HTTP Basic with the client id and secret)')
    const client = await this.clients.authenticate(request.credentials)

    if (request.grantType !== 'client_credentials') throw new UnsupportedGrantType('this endpoint issues tokens for grant_type=client_credentials only')

    const resource = request.resource ?? this.defaultResource
    if (!isResourceIndicator(resource)) throw new InvalidTarget('resource must be an absolute URI without a fragment (RFC 8707)')
    const granted = (await this.clients.scopesOn(client.clientId, resource)) ?? []
    if (granted.length === 0) throw new InvalidTarget('this client may not get tokens for that resource')

    const requested = request.scope === undefined ? granted : scopeTokensOf(request.scope)
    if (requested === undefined) throw new InvalidScope('scope must be space-separated scope tokens (RFC 6749 §3.3)')
    const ungranted = requested.filter((scope) => !granted.includes(scope))
    if (ungranted.length > 0) throw new InvalidScope(`this client is not granted ${ungranted.join(' ')} on that resource`)

    const scope = requested.join(' ')
    const token = await this.tokens.issueForClient({ clientId: client.clientId, audience: resource, scope })
    return { ...token, scope }
  }
}
