// Signup tickets: a short-lived, single-use bearer secret that stands for "this provider
// identity proved itself and may now create an account". Provider and subject come only
// from the ticket, never from the signup request. Stored under the ticket's hash.

import { InvalidSignupToken } from '../common/errors.js'
import { hashSecret, randomSecret } from '../common/secrets.js'
import { inRedis, type RedisClient } from '../storage/redis.js'
import type { ProviderProfile } from '../../providers/types.js'

export interface SignupTicket {
  provider: string
  subject: string
  profile: Omit<ProviderProfile, 'subject' | 'grant'>
  /** The provider grant, already encrypted (grant-vault.ts), for the identity signup links. */
  sealedGrant?: string
  /**
   * Set when an earlier use of this ticket failed in storage after the account may have
   * been written: the retry then finishes with the account the identity is linked to.
   */
  interrupted?: true
}

export interface ClaimedTicket {
  ticket: SignupTicket
  /** Puts the ticket back with its remaining life, when signup failed through no fault of the client. */
  release(marks?: Pick<SignupTicket, 'interrupted'>): Promise<void>
}

// GET, PTTL and DEL in one step: of parallel claims exactly one wins.
const CLAIM = `
local value = redis.call('GET', KEYS[1])
if not value then return false end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {value, ttl}
`

const TICKET_PATTERN = /^[A-Za-z0-9_-]{43}$/

export class SignupTickets {
  constructor(
    private readonly redis: RedisClient,
    private readonly ttlSeconds: number,
  ) {}

  async issue(ticket: SignupTicket): Promise<{ signupToken: string; expiresIn: number }> {
    const signupToken = randomSecret()
    await inRedis(this.redis, () => this.redis.set(key(signupToken), JSON.stringify(ticket), 'EX', this.ttlSeconds))
    return { signupToken, expiresIn: this.ttlSeconds }
  }

  /** Reads a ticket without using it up; undefined when unknown, used or expired. */
  async peek(signupToken: string): Promise<{ ticket: SignupTicket; expiresIn: number } | undefined> {
    if (!TICKET_PATTERN.test(signupToken)) return undefined
    const [value, ttlMs] = await inRedis(this.redis, () => Promise.all([this.redis.get(key(signupToken)), this.redis.pttl(key(signupToken))]))
    if (value === null || ttlMs <= 0) return undefined
    return { ticket: JSON.parse(value) as SignupTicket, expiresIn: Math.ceil(ttlMs / 1000) }
  }

  async claim(signupToken: string): Promise<ClaimedTicket> {
    if (!TICKET_PATTERN.test(signupToken)) throw new InvalidSignupToken('the signup token is invalid')
    const claimed = (await inRedis(this.redis, () => this.redis.eval(CLAIM, 1, key(signupToken)))) as [string, number] | null
    if (!claimed) throw new InvalidSignupToken('the signup token is unknown, used or expired')
    const [value, ttlMs] = claimed
    const ticket = JSON.parse(value) as SignupTicket
    return {
      ticket,
      release: async (marks) => {
        const kept = marks ? JSON.stringify({ ...ticket, ...marks }) : value
        if (ttlMs > 0) await inRedis(this.redis, () => this.redis.set(key(signupToken), kept, 'PX', ttlMs, 'NX'))
      },
    }
  }
}

const key = (signupToken: string) => `gw:signup:${hashSecret(signupToken)}`
