// Refresh sessions in Redis. A session is a token family (RFC 9700 §4.14.2):
//   gw:{user}:s:<sid>    hash: gen (live generation), live and prev (SHA-256 of the live
//                        token's secret and of its predecessor's), sealed (the live secret,
//                        readable only with the predecessor), key (the family key behind
//                        the tokens' tags), exp (absolute end), channel (cookie | body),
//                        created, lastUsed, label, resource, and the per-session refresh
//                        count: window (start of the current minute) and count
//   gw:{user}:index      sorted set of the user's session ids by last use (LRU eviction)
//   gw:{user}:scopes     the user's scopes per resource, cached (identity/user-scopes.ts):
//                        the rotation returns them, so a refresh is one Redis call
// A session holds the same fields after 1 or 10,000 rotations: no per-token records.
// Every key of a user shares the hash slot {user}. Each change is one Lua script that
// checks all its preconditions before its first write (Redis does not roll scripts back),
// and reads the clock from Redis (TIME): a script that waited out a stall in the socket
// is stamped with the time it really ran, not the time the gateway sent it.

import type { RedisClient as Redis } from '../storage/redis.js'
import { inRedis, replicatedWrite } from '../storage/redis.js'
import { sessionKeys } from '../../verifier/session-keys.js'

export { sessionKeys }

// Milliseconds since the epoch, from the Redis server's clock.
const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`

// Must equal familyTag() in refresh-token.ts. Tags are compared by their hashes, so the
// comparison's timing says nothing about the expected tag.
const TAG = `
local function tag(key, gen) return string.sub(redis.sha1hex(key .. ':' .. gen), 1, 32) end
local function sameTag(presented, key, gen) return redis.sha1hex(presented) == redis.sha1hex(tag(key, gen)) end
`

const START_SESSION = `${NOW}
-- KEYS: 1 user's session index, 2 session
-- ARGV: 1 sid, 2 secret hash, 3 family key, 4 token ttl ms, 5 max age ms, 6 channel, 7 label,
--       8 end the user's other sessions ('1'), 9 session key prefix, 10 resource, 11 max sessions
local ended = {}
local function finish(sid)
  redis.call('DEL', ARGV[9] .. sid)
  redis.call('ZREM', KEYS[1], sid)
  table.insert(ended, sid)
end
if ARGV[8] == '1' then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do finish(sid) end
elseif redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[11]) then
  -- Forget sessions that expired by themselves, then end the least recently used.
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if redis.call('EXISTS', ARGV[9] .. sid) == 0 then redis.call('ZREM', KEYS[1], sid) end
  end
  local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[11]) + 1
  if excess > 0 then
    for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do finish(sid) end
  end
end
local ttl = math.min(tonumber(ARGV[4]), tonumber(ARGV[5]))
redis.call('HSET', KEYS[2], 'gen', 0, 'live', ARGV[2], 'prev', '', 'sealed', '', 'key', ARGV[3],
  'exp', now + tonumber(ARGV[5]), 'channel', ARGV[6], 'created', now, 'lastUsed', now,
  'label', ARGV[7], 'resource', ARGV[10])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {tostring(now), ended}
`

const ROTATE = `${NOW}${TAG}
-- KEYS: 1 session, 2 user's session index, 3 user's scopes
-- ARGV: 1 presented generation, 2 presented secret hash, 3 presented tag, 4 successor secret hash,
--       5 successor secret sealed with the presented one, 6 channel, 7 token ttl ms, 8 sid, 9 strict ('1'),
--       10 refreshes allowed per session and minute
local s = redis.call('HMGET', KEYS[1], 'gen', 'live', 'prev', 'sealed', 'key', 'exp', 'channel', 'resource', 'window', 'count', 'created')
if not s[1] then return {'unknown'} end
local live, presented = tonumber(s[1]), tonumber(ARGV[1])
local remaining = tonumber(s[6]) - now
if remaining <= 0 then return {'unknown'} end
-- Counted per session, never per address (thousands of phones share one carrier NAT
-- address), and only for presentations of this session's live token or its predecessor:
-- someone without them cannot use up the session's allowance.
local function overLimit()
  local window, count = tonumber(s[9]) or 0, (tonumber(s[10]) or 0) + 1
  if now - window >= 60000 then window, count = now, 1 end
  if count > tonumber(ARGV[10]) then return 60000 - (now - window) end
  redis.call('HSET', KEYS[1], 'window', window, 'count', count)
  return false
end
-- The whole token must be ours: secret and tag (a flipped tag is not the live token).
local genuine = sameTag(ARGV[3], s[5], presented)
if presented == live and ARGV[2] == s[2] and genuine then
  if ARGV[6] ~= s[7] then return {'wrong_channel'} end
  local wait = overLimit()
  if wait then return {'limited', tostring(wait)} end
  local ttl = math.min(tonumber(ARGV[7]), remaining)
  redis.call('HSET', KEYS[1], 'gen', live + 1, 'live', ARGV[4], 'prev', s[2], 'sealed', ARGV[5], 'lastUsed', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[2], now, ARGV[8])
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
  return {'rotated', tostring(live + 1), tag(s[5], live + 1), tostring(ttl), s[8], redis.call('HGET', KEYS[3], s[8]) or '', s[11]}
end
-- The predecessor of a live token nobody has presented yet: its answer was lost, or a
-- parallel request raced it. Same successor, however late, until the session ends.
if presented == live - 1 and ARGV[2] == s[3] and genuine and ARGV[6] == s[7] and ARGV[9] ~= '1' then
  local wait = overLimit()
  if wait then return {'limited', tostring(wait)} end
  return {'grace', tostring(live), tag(s[5], live), s[4], tostring(redis.call('PTTL', KEYS[1])), s[8], redis.call('HGET', KEYS[3], s[8]) or '', s[11]}
end
-- A token this session really issued and has since rotated, on either channel: reuse.
if presented < live and genuine then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[8])
  return {'reuse'}
end
return {'unknown'}
`

const END_SESSION = `${TAG}
-- KEYS: 1 session, 2 user's session index
-- ARGV: 1 sid, and optionally (proof that the caller holds a token of this session):
--       2 generation, 3 secret hash, 4 tag
if ARGV[2] then
  local s = redis.call('HMGET', KEYS[1], 'gen', 'live', 'prev', 'key')
  if not s[1] then return 0 end
  local gen = tonumber(ARGV[2])
  local holds = (gen == tonumber(s[1]) and ARGV[3] == s[2]) or (gen == tonumber(s[1]) - 1 and ARGV[3] == s[3])
    or (gen < tonumber(s[1]) and sameTag(ARGV[4], s[4], gen))
  if not holds then return 0 end
end
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
`

// Every session of one user, in one step: a rotation racing it either ran before (and its
// session is deleted here) or runs after (and finds no session). Nothing survives.
const END_ALL_SESSIONS = `
-- KEYS: 1 user's session index; ARGV: 1 session key prefix
local ended = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
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

/** The token a client presented, as the store needs it: never the secret itself. */
export interface PresentedToken {
  userId: string
  sessionId: string
  generation: number
  secretHash: Buffer
  tag: string
}

/**
 * The live token of a session: `tag` completes its wire form. `resource`: '' for the
 * gateway itself. `cachedScopes`: the user's cached scopes there, as user-scopes.ts wrote them ('' if none).
 */
export interface LiveToken {
  generation: number
  tag: string
  ttlMs: number
  resource: string
  cachedScopes: string
  /** When the session started (Redis time, ms): the login its tokens' `auth_time` names. */
  createdAt: number
}

export type RotationResult =
  | ({ outcome: 'rotated' } & LiveToken)
  | ({ outcome: 'grace'; sealedSecret: Buffer } & LiveToken)
  | { outcome: 'limited'; retryAfterMs: number }
  | { outcome: 'unknown' | 'wrong_channel' | 'reuse' }

export type Channel = 'cookie' | 'body'

export class SessionStore {

  /**
   * `waitReplicas` (REDIS_WAIT_REPLICAS): starts, rotations and ends return only once that
   * many replicas hold them, so a failover cannot bring back a session that was ended or a
   * token that was rotated away.
   */
  constructor(
    private readonly redis: Redis,
    private readonly waitReplicas = 0,
  ) {
    // Called by name through replicatedWrite (with WAIT when REDIS_WAIT_REPLICAS is set).
    redis.defineCommand('startSession', { numberOfKeys: 2, lua: START_SESSION })
    redis.defineCommand('rotateRefreshToken', { numberOfKeys: 3, lua: ROTATE })
    redis.defineCommand('endSession', { numberOfKeys: 2, lua: END_SESSION })
    redis.defineCommand('endAllSessions', { numberOfKeys: 1, lua: END_ALL_SESSIONS })
  }

  /**
   * Stores a new session; returns when it was created (Redis time, ms: the `auth_time` its
   * refreshes will report too) and the ids of sessions it ended (single policy, or over the cap).
   */
  async start(input: {
    userId: string
    sessionId: string
    secretHash: Buffer
    familyKey: string
    ttlMs: number
    maxAgeMs: number
    channel: Channel
    label: string
    endOtherSessions: boolean
    maxSessions: number
    resource: string
  }): Promise<{ createdAt: number; ended: string[] }> {
    const { userId, sessionId } = input
    const [created, ended] = await inRedis(() =>
      replicatedWrite<[string, string[]]>(
        this.redis, this.waitReplicas, 'startSession',
        keys.index(userId), keys.session(userId, sessionId),
        sessionId, input.secretHash, input.familyKey, input.ttlMs, input.maxAgeMs, input.channel, input.label,
        input.endOtherSessions ? '1' : '0', keys.session(userId, ''), input.resource, input.maxSessions,
      ),
    )
    return { createdAt: Number(created), ended }
  }

  async rotate(input: {
    presented: PresentedToken
    successorHash: Buffer
    sealedSuccessor: Buffer
    ttlMs: number
    channel: Channel
    strict: boolean
    refreshesPerMinute: number
  }): Promise<RotationResult> {
    const { userId, sessionId, generation, secretHash, tag } = input.presented
    const [outcome, ...rest] = await inRedis(() =>
      replicatedWrite<Buffer[]>(
        this.redis, this.waitReplicas, 'rotateRefreshTokenBuffer',
        keys.session(userId, sessionId), keys.index(userId), keys.scopes(userId),
        generation, secretHash, tag, input.successorHash, input.sealedSuccessor, input.channel, input.ttlMs, sessionId,
        input.strict ? '1' : '0', input.refreshesPerMinute,
      ),
    )
    const text = (value: Buffer | undefined) => value?.toString() ?? ''
    switch (text(outcome)) {
      case 'rotated': {
        const [gen, liveTag, ttl, resource, scopes, created] = rest
        return {
          outcome: 'rotated',
          generation: Number(text(gen)),
          tag: text(liveTag),
          ttlMs: Number(text(ttl)),
          resource: text(resource),
          cachedScopes: text(scopes),
          createdAt: Number(text(created)),
        }
      }
      case 'grace': {
        const [gen, liveTag, sealed, ttl, resource, scopes, created] = rest
        return {
          outcome: 'grace',
          generation: Number(text(gen)),
          tag: text(liveTag),
          sealedSecret: sealed ?? Buffer.alloc(0),
          ttlMs: Number(text(ttl)),
          resource: text(resource),
          cachedScopes: text(scopes),
          createdAt: Number(text(created)),
        }
      }
      case 'limited':
        return { outcome: 'limited', retryAfterMs: Number(text(rest[0])) }
      case 'reuse':
        return { outcome: 'reuse' }
      case 'wrong_channel':
        return { outcome: 'wrong_channel' }
      default:
        return { outcome: 'unknown' }
    }
  }

  /** Ends a session by a token of it (proof of possession): true when it was live. */
  async endByToken(presented: PresentedToken): Promise<boolean> {
    const { userId, sessionId } = presented
    const ended = await inRedis(() =>
      replicatedWrite<number>(
        this.redis, this.waitReplicas, 'endSession',
        keys.session(userId, sessionId), keys.index(userId), sessionId, presented.generation, presented.secretHash, presented.tag,
      ),
    )
    return ended > 0
  }

  /** Ends one session of a user (the user's own choice, or an operator's). */
  async end(userId: string, sessionId: string): Promise<boolean> {
    const ended = await inRedis(() => replicatedWrite<number>(this.redis, this.waitReplicas, 'endSession', keys.session(userId, sessionId), keys.index(userId), sessionId))
    return ended > 0
  }

  /** Ends every session of a user; returns how many were live. */
  endAll(userId: string): Promise<number> {
    return inRedis(() => replicatedWrite<number>(this.redis, this.waitReplicas, 'endAllSessions', keys.index(userId), keys.session(userId, '')))
  }

  /** The user's live sessions, oldest first; ids of sessions that expired are dropped from the index. */
  async list(userId: string): Promise<SessionSummary[]> {
    const sessionIds = await inRedis(() => this.redis.zrange(keys.index(userId), '0', '-1'))
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
    if (expired.length > 0) await inRedis(() => this.redis.zrem(keys.index(userId), ...expired))
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
