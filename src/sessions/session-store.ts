// Refresh sessions in Redis. A session is a token family (RFC 9700 §4.14.2):
//   gw:{user}:s:<sid>    hash: gen (live generation), live and prev (SHA-256 of the live
//                        token's secret and of its predecessor's), sealed (the live secret,
//                        readable only with the predecessor), key (the family key behind
//                        the tokens' tags), exp (absolute end), channel (cookie | body),
//                        created, lastUsed (what eviction goes by), label, resource, the
//                        per-session refresh count: window (start of the current minute) and
//                        count, and indexUntil (see KEEP_INDEX)
//   gw:{user}:index      sorted set of the user's session ids (scored by when they started)
//   gw:{user}:scopes     the user's scopes per resource, cached (identity/user-scopes.ts):
//                        the rotation returns them, so a refresh is one Redis call
//   gw:{user}:deleted    set for an hour when the account is deleted: a login that found
//                        the account before then starts no session (START_SESSION checks it)
// A session holds the same fields after 1 or 10,000 rotations: no per-token records.
// Every key of a user shares the hash slot {user}. Each change is one Lua script that
// checks all its preconditions before its first write (Redis does not roll scripts back),
// and reads the clock from Redis (TIME): a script that waited out a stall in the socket
// is stamped with the time it really ran, not the time the gateway sent it. Only a
// session's `created` is the login's time (its auth_time, signed before Redis answers).

import type { RedisClient as Redis } from '../storage/redis.js'
import { inRedis, replicatedWrite } from '../storage/redis.js'
import { sessionKeys } from '../../verifier/session-keys.js'
import type { ScopeCacheEntry } from '../identity/user-scopes.js'

export { sessionKeys }

// Milliseconds since the epoch, from the Redis server's clock.
export const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`

// Must equal familyTag() in refresh-token.ts. Tags are compared by their hashes, so the
// comparison's timing says nothing about the expected tag.
export const TAG = `
local function tag(key, gen) return string.sub(redis.sha1hex(key .. ':' .. gen), 1, 32) end
local function sameTag(presented, key, gen) return redis.sha1hex(presented) == redis.sha1hex(tag(key, gen)) end
`

// The user's index must outlive each of its sessions: a session it no longer lists could not
// be counted against MAX_SESSIONS_PER_USER or ended by a logout everywhere. Each session sees
// to that itself, ahead of need by a sixteenth of its lifetime, and remembers until when (its
// indexUntil): so most rotations leave the index alone, and an index outlives its last
// session by at most that sixteenth. Follows NOW. Returns the session's new indexUntil, or
// nil when the index already lives long enough.
export const KEEP_INDEX = `
local function keepIndex(indexKey, ttl, indexUntil)
  if now + ttl <= (tonumber(indexUntil) or 0) then return nil end
  local lead = ttl + math.floor(ttl / 16)
  if redis.call('PTTL', indexKey) < lead then redis.call('PEXPIRE', indexKey, lead) end
  return now + lead
end
`

const START_SESSION = `${NOW}${KEEP_INDEX}
-- KEYS: 1 user's session index, 2 session, 3 user's cached scopes, 4 the account's deletion mark
-- ARGV: 1 sid, 2 secret hash, 3 family key, 4 token ttl ms, 5 max age ms, 6 channel, 7 label,
--       8 end the user's other sessions ('1'), 9 session key prefix, 10 resource, 11 max sessions,
--       12 the login's time (ms: created, which auth_time is read from),
--       and optionally scopes the login just read: 13 their resource field, 14 entry, 15 ttl s
-- The account was deleted after this login found it.
if redis.call('EXISTS', KEYS[4]) == 1 then return false end
local ended = {}
local function finish(sid)
  redis.call('DEL', ARGV[9] .. sid)
  redis.call('ZREM', KEYS[1], sid)
  table.insert(ended, sid)
end
if ARGV[8] == '1' then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do finish(sid) end
elseif redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[11]) then
  -- Forget sessions that expired by themselves, then end the least recently used, by each
  -- session's own lastUsed (a rotation touches only its session, not the index).
  local live = {}
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local used = redis.call('HGET', ARGV[9] .. sid, 'lastUsed')
    if used then table.insert(live, {sid, tonumber(used)})
    elseif redis.call('EXISTS', ARGV[9] .. sid) == 1 then table.insert(live, {sid, 0})
    else redis.call('ZREM', KEYS[1], sid) end
  end
  table.sort(live, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  for i = 1, #live - tonumber(ARGV[11]) + 1 do finish(live[i][1]) end
end
local ttl = math.min(tonumber(ARGV[4]), tonumber(ARGV[5]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'gen', 0, 'live', ARGV[2], 'prev', '', 'sealed', '', 'key', ARGV[3],
  'exp', now + tonumber(ARGV[5]), 'channel', ARGV[6], 'created', ARGV[12], 'lastUsed', now,
  'label', ARGV[7], 'resource', ARGV[10], 'indexUntil', keepIndex(KEYS[1], ttl, nil))
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[13] then
  redis.call('HSET', KEYS[3], ARGV[13], ARGV[14])
  redis.call('EXPIRE', KEYS[3], ARGV[15])
end
return ended
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
-- KEYS: 1 user's session index, 2 the account's deletion mark
-- ARGV: 1 session key prefix, 2 seconds to keep the deletion mark ('0': the account stays)
if ARGV[2] ~= '0' then redis.call('SET', KEYS[2], '1', 'EX', ARGV[2]) end
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
    // Called by name through replicatedWrite (with WAIT when REDIS_WAIT_REPLICAS is set). The
    // rotation's script lives with the code that acts on it (refresh-rotation.ts).
    redis.defineCommand('startSession', { numberOfKeys: 4, lua: START_SESSION })
    redis.defineCommand('endSession', { numberOfKeys: 2, lua: END_SESSION })
    redis.defineCommand('endAllSessions', { numberOfKeys: 2, lua: END_ALL_SESSIONS })
  }

  /**
   * Stores a new session; returns the ids of sessions it ended (single policy, or over the
   * cap), or 'deleted' when the account was deleted meanwhile (nothing stored).
   * `createdAt`: the login's time (ms), the `auth_time` its refreshes will report.
   * `cacheScopes`: the user's scopes a login read with the user, cached in the same call.
   */
  async start(input: {
    userId: string
    sessionId: string
    secretHash: Buffer
    familyKey: string
    createdAt: number
    ttlMs: number
    maxAgeMs: number
    channel: Channel
    label: string
    endOtherSessions: boolean
    maxSessions: number
    resource: string
    cacheScopes?: ScopeCacheEntry
  }): Promise<{ ended: string[] } | 'deleted'> {
    const { userId, sessionId, cacheScopes } = input
    const scopes = cacheScopes ? [cacheScopes.resource, cacheScopes.entry, cacheScopes.ttlSeconds] : []
    const ended = await inRedis(this.redis, () =>
      replicatedWrite<string[] | null>(
        this.redis, this.waitReplicas, 'startSession',
        keys.index(userId), keys.session(userId, sessionId), keys.scopes(userId), keys.deleted(userId),
        sessionId, input.secretHash, input.familyKey, input.ttlMs, input.maxAgeMs, input.channel, input.label,
        input.endOtherSessions ? '1' : '0', keys.session(userId, ''), input.resource, input.maxSessions, input.createdAt, ...scopes,
      ),
    )
    return ended === null ? 'deleted' : { ended }
  }

  /** Ends a session by a token of it (proof of possession): true when it was live. */
  async endByToken(presented: PresentedToken): Promise<boolean> {
    const { userId, sessionId } = presented
    const ended = await inRedis(this.redis, () =>
      replicatedWrite<number>(
        this.redis, this.waitReplicas, 'endSession',
        keys.session(userId, sessionId), keys.index(userId), sessionId, presented.generation, presented.secretHash, presented.tag,
      ),
    )
    return ended > 0
  }

  /** Ends one session of a user (the user's own choice, or an operator's). */
  async end(userId: string, sessionId: string): Promise<boolean> {
    const ended = await inRedis(this.redis, () => replicatedWrite<number>(this.redis, this.waitReplicas, 'endSession', keys.session(userId, sessionId), keys.index(userId), sessionId))
    return ended > 0
  }

  /**
   * Ends every session of a user; returns how many were live. `deletedForSeconds`: the
   * account is gone, and no session may start for it that long (a login under way).
   */
  endAll(userId: string, deletedForSeconds = 0): Promise<number> {
    return inRedis(this.redis, () =>
      replicatedWrite<number>(this.redis, this.waitReplicas, 'endAllSessions', keys.index(userId), keys.deleted(userId), keys.session(userId, ''), deletedForSeconds),
    )
  }

  /** The user's live sessions, oldest first; ids of sessions that expired are dropped from the index. */
  async list(userId: string): Promise<SessionSummary[]> {
    const sessionIds = await inRedis(this.redis, () => this.redis.zrange(keys.index(userId), '0', '-1'))
    const rows = await inRedis(this.redis, () =>
      Promise.all(sessionIds.map((sessionId) => this.redis.hmget(keys.session(userId, sessionId), 'created', 'lastUsed', 'label'))),
    )
    const summaries: SessionSummary[] = []
    const expired: string[] = []
    rows.forEach(([created, lastUsed, label], index) => {
      const sessionId = sessionIds[index]!
      if (created === null) expired.push(sessionId)
      else summaries.push({ sessionId, createdAt: Number(created), lastUsedAt: Number(lastUsed), label: label ?? '' })
    })
    if (expired.length > 0) await inRedis(this.redis, () => this.redis.zrem(keys.index(userId), ...expired))
    return summaries.sort((a, b) => a.createdAt - b.createdAt)
  }

  async isActive(userId: string, sessionId: string): Promise<boolean> {
    return (await inRedis(this.redis, () => this.redis.exists(keys.session(userId, sessionId)))) === 1
  }

  /** The live generation of a session, or undefined once it has ended. */
  async generation(userId: string, sessionId: string): Promise<number | undefined> {
    const gen = await inRedis(this.redis, () => this.redis.hget(keys.session(userId, sessionId), 'gen'))
    return gen === null ? undefined : Number(gen)
  }
}

const keys = sessionKeys
