// The provider side of a deleted account or an unlinked identity, run by the job worker:
// Kakao unlinks the member with the admin key; Naver, Google and Apple revoke the grant kept
// (encrypted) at login. The job row, and with it the grant, is deleted once this is done or
// given up.

import type { ProviderRegistry } from '../../providers/registry.js'
import { PermanentJobFailure, type JobHandler } from '../jobs/job-worker.js'
import type { JobRow } from '../jobs/job-queue.js'
import type { GrantVault } from './grant-vault.js'

export const PROVIDER_CLEANUP = 'provider.cleanup'

/** What one identity's provider cleanup needs: who it was there, and the grant (still encrypted). */
export interface ProviderCleanup {
  /** The public id of the user the identity belonged to, for the audit trail. */
  userId: string
  provider: string
  subject: string
  sealedGrant?: string
}

/** The job row ending an identity's link at its provider, to write in the transaction that removes the identity. */
export function providerCleanupJob(userId: string, identity: { provider: string; subject: string; sealedGrant: string | null }): JobRow {
  const { provider, subject, sealedGrant } = identity
  const cleanup: ProviderCleanup = { userId, provider, subject, ...(sealedGrant ? { sealedGrant } : {}) }
  return { kind: PROVIDER_CLEANUP, payload: JSON.stringify(cleanup) }
}

export function providerCleanup(providers: Pick<ProviderRegistry, 'get'>, vault: GrantVault): JobHandler {
  return {
    describe: (job: ProviderCleanup) => ({ userId: job.userId, what: `${job.provider} cleanup` }),
    async run(job: ProviderCleanup): Promise<string> {
      // A provider turned off since the deletion throws here and is retried: turned on again, it is cleaned up.
      const provider = providers.get(job.provider)
      if (!provider.endLink) return 'nothing to do: this provider offers no unlink or revocation'
      let grant
      try {
        grant = job.sealedGrant === undefined ? undefined : await vault.open(job.sealedGrant)
      } catch {
        throw new PermanentJobFailure('the kept grant cannot be decrypted (its key is no longer in ENCRYPTION_KEYS)')
      }
      return provider.endLink(job.subject, grant)
    },
  }
}
