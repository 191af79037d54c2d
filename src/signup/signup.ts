// Completing an account: the signup ticket names the identity; the request adds the
// profile fields the provider did not give. User and identity are created together.

import type { ProfileField } from '../common/profile-text.js'
import { InvalidRequest, InvalidSignupToken, StorageUnavailable } from '../common/errors.js'
import type { IdentityToLink, NewUserProfile, PublicUser, UserDirectory } from '../identity/users.js'
import type { ClientContext } from '../login/login.js'
import type { SessionTokens, TokenSet } from '../sessions/session-tokens.js'
import type { SignupTickets } from './signup-tickets.js'
import type { UserScopes } from '../identity/user-scopes.js'
import { undoInBackground } from '../storage/redis.js'
import { checkEmail, checkNickname, checkPhoto, type CheckedText } from '../common/profile-text.js'

export interface SignupRequest {
  signupToken: string
  nickname: string
  email?: string
  photo?: string
}

export class SignupService {
  constructor(
    private readonly deps: {
      tickets: SignupTickets
      users: UserDirectory
      scopes: Pick<UserScopes, 'checkResource'>
      sessionTokens: SessionTokens
      signupRequiredFields: readonly ProfileField[]
    },
  ) {}

  /** What a pending signup knows and still needs, for the app's signup form. */
  async pending(signupToken: string) {
    const found = await this.deps.tickets.peek(signupToken)
    if (!found) throw new InvalidSignupToken('there is no pending signup, or it has expired')
    const { profile } = found.ticket
    const missing = this.deps.signupRequiredFields.filter((field) => !profile[field])
    return { provider: found.ticket.provider, profile, missing, expiresIn: found.expiresIn }
  }

  async complete(request: SignupRequest, client: ClientContext): Promise<{ tokens: TokenSet; user: PublicUser }> {
    // What the user typed is judged before the ticket is touched: a refused field leaves
    // the ticket as it was, for the corrected request.
    const typed = {
      nickname: accepted(checkNickname(request.nickname)),
      email: request.email === undefined ? undefined : accepted(checkEmail(request.email)),
      photo: request.photo === undefined ? undefined : accepted(checkPhoto(request.photo)),
    }
    await this.deps.scopes.checkResource(client.resource)
    const claimed = await this.deps.tickets.claim(request.signupToken)
    const { ticket } = claimed
    const profile = {
      nickname: typed.nickname,
      email: typed.email ?? ticket.profile.email,
      photo: typed.photo ?? ticket.profile.photo,
    }
    const missing = this.deps.signupRequiredFields.filter((field) => !profile[field])
    if (missing.length > 0) {
      await claimed.release()
      throw new InvalidRequest(`missing required fields: ${missing.join(', ')}`)
    }
    const identity = { provider: ticket.provider, subject: ticket.subject, email: ticket.profile.email, sealedGrant: ticket.sealedGrant }
    // The client did nothing wrong when storage fails: the same ticket works again once
    // storage is back, and finishes with the account this attempt may already have written.
    const keepTicketOnOutage = async <T>(step: () => Promise<T>): Promise<T> => {
      try {
        return await step()
      } catch (error) {
        if (error instanceof StorageUnavailable) undoInBackground(() => claimed.release({ interrupted: true }))
        throw error
      }
    }
    const user = await keepTicketOnOutage(() => this.accountFor(identity, profile, ticket.interrupted === true))
    const tokens = await keepTicketOnOutage(() => this.deps.sessionTokens.startSession(user.id, client))
    return { tokens, user }
  }

  private async accountFor(identity: IdentityToLink, profile: NewUserProfile, interrupted: boolean): Promise<PublicUser> {
    if (interrupted) {
      const written = await this.deps.users.findByIdentity(identity)
      if (written) return written
    }
    return await this.deps.users.createWithIdentity(profile, identity)
  }
}

function accepted(checked: CheckedText): string {
  if (!checked.ok) throw new InvalidRequest(checked.problem)
  return checked.value
}
