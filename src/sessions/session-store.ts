// Refresh sessions in Redis. A session is a token family (RFC 9700 §4.14.2):
//   gw:{user}:s:<sid>        hash: gen (live generation), exp (absolute end), rotatedAt,
//                            sealed (the live token, readable only with its predecessor),
//                            channel (cookie | body), created, lastUsed, label
//   gw:{user}:rt:<hash>      hash: gen — one per issued token, kept until the token's own
//                            expiry so a rotated token is recognised as reuse
//   gw:{user}:sessions       set of the user's session ids
// Every key of a user shares the hash slot {user}. Each change is one Lua script that
// checks all its preconditions before its first write: Redis does not roll scripts back.

import type { Redis } from 'ioredis'
import { inRedis } from '../storage/redis.js'
import { sessionKeys } from './session-keys.js'

export { sessionKeys }

const START_SESSION = `
-- KEYS: 1 user's session set, 2 session, 3 token record
-- ARGV: 1 sid, 2 now, 3 token ttl ms, 4 session end ms, 5 channel, 6 label, 7 single, 8 session key prefix, 9 resource
local ended = 0
if ARGV[7] == '1' then
  for _, other in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    ended = ended + redis.call('DEL', ARGV[8] .. other)
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[2], 'gen', 0, 'exp', ARGV[4], 'rotatedAt', 0, 'channel', ARGV[5],
  'created', ARGV[2], 'lastUsed', ARGV[2], 'label', ARGV[6], 'resource', ARGV[9])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], 'gen', 0)
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return ended
`

const ROTATE = `
-- KEYS: 1 session, 2 presented token record, 3 successor token record, 4 user's session set
-- ARGV: 1 now, 2 grace ms, 3 token ttl ms, 4 sealed successor, 5 channel, 6 sid
local presented = redis.call('HGET', KEYS[2], 'gen')
if not presented then return {'unknown'} end
local s = redis.call('HMGET', KEYS[1], 'gen', 'exp', 'rotatedAt', 'sealed', 'channel', 'resource')
if not s[1] then return {'unknown'} end
if s[5] ~= ARGV[5] then return {'wrong_channel'} end
local now, gen, live = tonumber(ARGV[1]), tonumber(presented), tonumber(s[1])
if gen == live then
  local remaining = tonumber(s[2]) - now
  if remaining <= 0 then return {'unknown'} end
  local ttl = math.min(tonumber(ARGV[3]), remaining)
  redis.call('HSET', KEYS[1], 'gen', live + 1, 'rotatedAt', now, 'sealed', ARGV[4], 'lastUsed', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('HSET', KEYS[3], 'gen', live + 1)
  redis.call('PEXPIRE', KEYS[3], ttl)
  return {'rotated', tostring(ttl), s[6] or ''}
end
if gen == live - 1 and now - tonumber(s[3]) <= tonumber(ARGV[2]) then
  -- A concurrent or retried refresh, not theft: answer with the same successor.
  return {'grace', s[4], tostring(redis.call('PTTL', KEYS[1])), s[6] or ''}
end
-- A rotated token presented again: revoke the whole family.
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[6])
return {'reuse'}
`

const END_SESSION = `
-- KEYS: 1 session, 2 user's session set, 3 token record (optional proof of possession)
-- ARGV: 1 sid
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
`

// Every session of one user, in one step: a rotation racing it either ran before (and its
// session is deleted here) or runs after (and finds no session). Nothing survives.
const END_ALL_SESSIONS = `
-- KEYS: 1 user's session set; ARGV: 1 session key prefix
local ended = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  ended = ended + redis.call('DEL', ARGV[1] .. sid)
end
redis.call('DEL', KEYS[1])
return ended
`

/** What a user may see of one of their sessions. */
export interface SessionSummary {
  sessionId: string
  createdAt: number
  lastUsedAt: number
  label: string
}

/** `resource`: the RFC 8707 resource the session was started for ('' for the gateway itself). */
export type RotationResult =
  | { outcome: 'rotated'; ttlMs: number; resource: string }
  | { outcome: 'grace'; sealedSuccessor: string; ttlMs: number; resource: string }
  | { outcome: 'unknown' | 'wrong_channel' | 'reuse' }

export type Channel = 'cookie' | 'body'

type ScriptedRedis = Redis & {
  startSession(...args: (string | number)[]): Promise<number>
  rotateRefreshToken(...args: (string | number)[]): Promise<string[]>
  endSession(...args: (string | number)[]): Promise<number>
  endAllSessions(...args: (string | number)[]): Promise<number>
}

export class SessionStore {
  private readonly redis: ScriptedRedis

  constructor(redis: Redis) {
    redis.defineCommand('startSession', { numberOfKeys: 3, lua: START_SESSION })
    redis.defineCommand('rotateRefreshToken', { numberOfKeys: 4, lua: ROTATE })
    // The key count varies: the token record is passed only when possession must be proven.
    redis.defineCommand('endSession', { lua: END_SESSION })
    redis.defineCommand('endAllSessions', { numberOfKeys: 1, lua: END_ALL_SESSIONS })
    this.redis = redis as ScriptedRedis
  }

  start(input: {
    userId: string
    sessionId: string
    tokenHash: string
    now: number
    ttlMs: number
    endsAt: number
    channel: Channel
    label: string
    endOtherSessions: boolean
    resource: string
  }): Promise<number> {
    const { userId, sessionId } = input
    return inRedis(() =>
      this.redis.startSession(
        keys.sessions(userId), keys.session(userId, sessionId), keys.token(userId, input.tokenHash),
        sessionId, input.now, input.ttlMs, input.endsAt, input.channel, input.label,
        input.endOtherSessions ? '1' : '0', keys.session(userId, ''), input.resource,
      ),
    )
  }

  async rotate(input: {
    userId: string
    sessionId: string
    presentedHash: string
    successorHash: string
    sealedSuccessor: string
    now: number
    graceMs: number
    ttlMs: number
    channel: Channel
  }): Promise<RotationResult> {
    const { userId, sessionId } = input
    const [outcome, first, second, third] = await inRedis(() =>
      this.redis.rotateRefreshToken(
        keys.session(userId, sessionId), keys.token(userId, input.presentedHash),
        keys.token(userId, input.successorHash), keys.sessions(userId),
        input.now, input.graceMs, input.ttlMs, input.sealedSuccessor, input.channel, sessionId,
      ),
    )
    if (outcome === 'rotated') return { outcome, ttlMs: Number(first), resource: second ?? '' }
    if (outcome === 'grace') return { outcome, sealedSuccessor: first!, ttlMs: Number(second), resource: third ?? '' }
    return { outcome: outcome as 'unknown' | 'wrong_channel' | 'reuse' }
  }

  /** Ends one session; with `tokenHash`, only if that token belongs to it (proof of possession). */
  async end(userId: string, sessionId: string, tokenHash?: string): Promise<boolean> {
    const scriptKeys = [keys.session(userId, sessionId), keys.sessions(userId)]
    if (tokenHash !== undefined) scriptKeys.push(keys.token(userId, tokenHash))
    const ended = await inRedis(() => this.redis.endSession(scriptKeys.length, ...scriptKeys, sessionId))
    return ended > 0
  }

  /** Ends every session of a user; returns how many were live. */
  endAll(userId: string): Promise<number> {
    return inRedis(() => this.redis.endAllSessions(keys.sessions(userId), keys.session(userId, '')))
  }

  /** The user's live sessions, oldest first; ids of sessions that expired are dropped from the index. */
  async list(userId: string): Promise<SessionSummary[]> {
    const sessionIds = await inRedis(() => this.redis.smembers(keys.sessions(userId)))
    const rows = await inRedis(() =>
      Promise.all(sessionIds.map((sessionId) => this.redis.hmget(keys.session(userId, sessionId), 'created', 'lastUsed', 'label'))),
    )
    const summaries: SessionSummary[] = []
    const expired: string[] = []
    rows.forEach(([created, lastUsed, label], index) => {
      const sessionId = sessionIds[index]!
      if (created === null) expired.push(sessionId)
      else summaries.push({ sessionId, createdAt: Number(created), lastUsedAt: Number(lastUsed), label: label ?? '' })
    })
    if (expired.length > 0) await inRedis(() => this.redis.srem(keys.sessions(userId), ...expired))
    return summaries.sort((a, b) => a.createdAt - b.createdAt)
  }

  async isActive(userId: string, sessionId: string): Promise<boolean> {
    return (await inRedis(() => this.redis.exists(keys.session(userId, sessionId)))) === 1
  }

  /** The live generation of a session, or undefined once it has ended. */
  async generation(userId: string, sessionId: string): Promise<number | undefined> {
    const gen = await inRedis(() => this.redis.hget(keys.session(userId, sessionId), 'gen'))
    return gen === null ? undefined : Number(gen)
  }
}

const keys = sessionKeys
