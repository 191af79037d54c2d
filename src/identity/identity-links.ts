// Several providers on one account: linking another identity the caller has proved, and
// unlinking one. An identity that belongs to someone else is never moved or merged, and
// an account keeps at least one identity to log in with. Every change, and every refused
// link, is audited.

import { GatewayError } from '../common/errors.js'
import type { AuditLog, RequestOrigin } from '../audit/audit-log.js'
import type { ProviderGrant, ProviderProfile } from '../../providers/types.js'
import type { GrantVault } from './grant-vault.js'
import type { ExternalIdentity, IdentityToLink, LinkedIdentity, UserDirectory } from './users.js'

export class IdentityLinks {
  constructor(
    private readonly deps: {
      users: UserDirectory
      vault: GrantVault
      audit: AuditLog
    },
  ) {}

  /** What linking stores of a proved identity: its subject, the vouched email, the grant sealed. */
  async toLink(provider: string, profile: ProviderProfile): Promise<IdentityToLink> {
    const sealedGrant = profile.grant && (await this.deps.vault.seal(profile.grant))
    return { provider, subject: profile.subject, email: profile.email, sealedGrant }
  }

  /** A known identity logged in again with a new grant: keep the newest, the one that still revokes. */
  async keepGrant(identity: ExternalIdentity, grant: ProviderGrant): Promise<void> {
    await this.deps.users.replaceGrant(identity, await this.deps.vault.seal(grant))
  }

  /** Links the proved identity to the user; returns all of the user's identities. */
  async link(userId: string, provider: string, profile: ProviderProfile, origin: RequestOrigin): Promise<LinkedIdentity[]> {
    const identity = await this.toLink(provider, profile)
    try {
      const linked = await this.deps.users.link(userId, identity)
      await this.record('identity.linked', userId, origin, 'success', linked.id, provider)
    } catch (error) {
      if (error instanceof GatewayError && error.code.endsWith('_linked')) {
        await this.record('identity.linked', userId, origin, 'denied', undefined, `${provider}: ${error.code}`)
      }
      throw error
    }
    return this.deps.users.identitiesOf(userId)
  }

  async unlink(userId: string, identityId: string, origin: RequestOrigin): Promise<void> {
    const provider = await this.deps.users.unlink(userId, identityId)
    await this.record('identity.unlinked', userId, origin, 'success', identityId, provider)
  }

  private record(action: 'identity.linked' | 'identity.unlinked', userId: string, origin: RequestOrigin, outcome: 'success' | 'denied', identityId: string | undefined, detail: string) {
    return this.deps.audit.record({ action, userId, actor: 'user', outcome, target: identityId && `identity:${identityId}`, detail, ...origin })
  }
}
