// An operator throws a user out: every session ends at once (refresh tokens fail, access
// tokens are refused by every session-checking bearer check), and the audit trail says
// which client did it and from where.

import type { RequestOrigin } from '../audit/audit-log.js'
import { NotFound } from '../common/errors.js'
import type { UserDirectory } from '../identity/users.js'
import type { RefreshSessions } from '../sessions/refresh-sessions.js'

export class ForcedLogout {
  constructor(
    private readonly users: Pick<UserDirectory, 'findWithIdentities'>,
    private readonly sessions: Pick<RefreshSessions, 'endAll'>,
  ) {}

  /** Ends every session of the user (by public id); returns how many there were. */
  async ofUser(userId: string, actor: string, origin: RequestOrigin): Promise<number> {
    if (!(await this.users.findWithIdentities(userId))) throw new NotFound(`no user "${userId}"`)
    return await this.sessions.endAll(userId, actor, origin, 'forced_logout')
  }
}
