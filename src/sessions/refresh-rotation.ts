// The refresh rule, read in one place: the script decides atomically in Redis what a
// presented refresh token is, and rotate() acts on each of its outcomes in one exhaustive
// switch. Outcomes:
//   rotated        the session's live token, on its own channel: the successor is stored and returned
//   grace          the live token's predecessor again, on its channel, within REFRESH_REUSE_GRACE's
//                  rule (a lost answer, or parallel requests): the same successor, sealed with it
//   limited        over the session's refreshes per minute (counted per session, never per address)
//   reuse          any other token this session issued and has since rotated, on either channel:
//                  theft, so the whole session ends
//   wrong_channel  the live token on the other channel (a cookie's token in a body): refused, session kept
//   unknown        expired, ended, forged or not ours: refused
// The storage this flow needs is one Redis script call; the session's other scripts live in
// session-store.ts.
//
// The script's arguments and answers are all text: ioredis builds a command that carries a
// Buffer on a path about 2.5 times as costly as an all-string one, on every refresh. So the
// secrets' hashes and the seal travel as hex, and the script stores them as the 32 raw bytes
// that session-store.ts's scripts and earlier versions store and read: during a rolling
// upgrade, or after a rollback, every instance still reads every session.

import { hash } from 'node:crypto'
import type { AuditLog, RequestOrigin } from '../audit/audit-log.js'
import { InvalidGrant, RateLimited } from '../common/errors.js'
import { sealWith, sha256, unsealWith } from '../common/secrets.js'
import type { AccountEvents } from '../events/account-events.js'
import { gathered, inRedis, replicatedWrite, rerunIfAnswerLost, type RedisClient } from '../storage/redis.js'
import { sessionKeys } from '../../verifier/session-keys.js'
import { composeRefreshToken, newTokenSecret, parseRefreshToken, type RefreshTokenParts } from './refresh-token.js'
import type { IssuedRefreshToken, SessionClient, SessionPolicy } from './refresh-sessions.js'
import { KEEP_INDEX, NOW, TAG } from './session-store.js'

const ROTATE = `${NOW}${TAG}${KEEP_INDEX}
-- KEYS: 1 session, 2 user's session index, 3 user's scopes
-- ARGV: 1 presented generation, 2 presented secret hash, 3 presented tag, 4 successor secret hash,
--       5 successor secret sealed with the presented one, 6 channel, 7 token ttl ms, 8 sid, 9 strict ('1'),
--       10 refreshes allowed per session and minute; 2, 4 and 5 in hex (32 bytes each)
local function raw(text)
  local function word(at) return tonumber(string.sub(text, at, at + 7), 16) end
  return struct.pack('>I4I4I4I4I4I4I4I4', word(1), word(9), word(17), word(25), word(33), word(41), word(49), word(57))
end
-- Any length: a seal left by an older version (AES-GCM) is longer than 32 bytes.
local function hex(bytes)
  return (string.gsub(bytes, '.', function(byte) return string.format('%02x', string.byte(byte)) end))
end
local s = redis.call('HMGET', KEYS[1], 'gen', 'live', 'prev', 'sealed', 'key', 'exp', 'channel', 'resource', 'window', 'count', 'created', 'indexUntil')
if not s[1] then return {'unknown'} end
local live, presented = tonumber(s[1]), tonumber(ARGV[1])
local remaining = tonumber(s[6]) - now
if remaining <= 0 then return {'unknown'} end
-- Counted per session, never per address (thousands of phones share one carrier NAT
-- address), and only for presentations of this session's live token or its predecessor:
-- someone without them cannot use up the session's allowance. The count is stored with
-- what the presentation writes anyway.
local window, count = tonumber(s[9]) or 0, (tonumber(s[10]) or 0) + 1
if now - window >= 60000 then window, count = now, 1 end
local function overLimit()
  if count > tonumber(ARGV[10]) then return 60000 - (now - window) end
  return false
end
-- The whole token must be ours: secret and tag (a flipped tag is not the live token).
local genuine = sameTag(ARGV[3], s[5], presented)
local presentedHash = raw(ARGV[2])
if presented == live and presentedHash == s[2] and genuine then
  if ARGV[6] ~= s[7] then return {'wrong_channel'} end
  local wait = overLimit()
  if wait then return {'limited', tostring(wait)} end
  local ttl = math.min(tonumber(ARGV[7]), remaining)
  -- Numbers become text once each (the conversion is a measurable part of the script).
  local nextGen, ttlText = tostring(live + 1), tostring(ttl)
  local fields = {'gen', nextGen, 'live', raw(ARGV[4]), 'prev', s[2], 'sealed', raw(ARGV[5]), 'lastUsed', now, 'window', window, 'count', count}
  local indexUntil = keepIndex(KEYS[2], ttl, s[12])
  if indexUntil then table.insert(fields, 'indexUntil'); table.insert(fields, indexUntil) end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('PEXPIRE', KEYS[1], ttlText)
  return {'rotated', nextGen, tag(s[5], nextGen), ttlText, s[8], redis.call('HGET', KEYS[3], s[8]) or '', s[11]}
end
-- The predecessor of a live token nobody has presented yet: its answer was lost, or a
-- parallel request raced it. Same successor, however late, until the session ends.
if presented == live - 1 and presentedHash == s[3] and genuine and ARGV[6] == s[7] and ARGV[9] ~= '1' then
  local wait = overLimit()
  if wait then return {'limited', tostring(wait)} end
  redis.call('HSET', KEYS[1], 'window', window, 'count', count)
  return {'grace', tostring(live), tag(s[5], live), hex(s[4]), tostring(redis.call('PTTL', KEYS[1])), s[8], redis.call('HGET', KEYS[3], s[8]) or '', s[11]}
end
-- A token this session really issued and has since rotated, on either channel: reuse.
if presented < live and genuine then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[8])
  return {'reuse'}
end
return {'unknown'}
`

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


type RotationResult =
  | ({ outcome: 'rotated' } & LiveToken)
  | ({ outcome: 'grace'; sealedSecret: string } & LiveToken)
  | { outcome: 'limited'; retryAfterMs: number }
  | { outcome: 'unknown' | 'wrong_channel' | 'reuse' }

export class RefreshRotation {
  constructor(
    private readonly redis: RedisClient,
    /** REDIS_WAIT_REPLICAS: a rotation is answered once that many replicas hold it. */
    private readonly waitReplicas: number,
    private readonly policy: Pick<SessionPolicy, 'refreshTokenTtl' | 'refreshReuseGrace' | 'refreshesPerMinute'>,
    private readonly audit: AuditLog,
    /** Tells the app (sessions.revoked) when reuse ended a session. */
    private readonly events?: Pick<AccountEvents, 'announce'>,
  ) {
    redis.defineCommand('rotateRefreshToken', { numberOfKeys: 3, lua: ROTATE })
  }

  /** Exchanges a refresh token for its successor; throws InvalidGrant for anything unusable. */
  async rotate(presented: string, client: SessionClient): Promise<IssuedRefreshToken> {
    const parts = parseRefreshToken(presented)
    if (!parts) {
      this.audit.countRefresh('invalid')
      throw new InvalidGrant('the refresh token is invalid')
    }
    const successorSecret = newTokenSecret()
    const result = await this.run(parts, successorSecret, client).catch(this.audit.countRefreshFailure)
    switch (result.outcome) {
      case 'rotated':
        this.audit.countRefresh('rotated')
        return issued(parts, result, successorSecret)
      case 'grace': {
        const sameSuccessor = unsealWith(parts.secret, Buffer.from(result.sealedSecret, 'hex'))
        if (!sameSuccessor) throw new InvalidGrant('the refresh token is invalid')
        this.audit.countRefresh('grace')
        return issued(parts, result, sameSuccessor)
      }
      case 'limited': {
        this.audit.countRefresh('limited')
        const retryAfter = Math.max(1, Math.ceil(result.retryAfterMs / 1000))
        throw new RateLimited(`too many refreshes of this session; retry after ${retryAfter} s`, { retryAfterSeconds: retryAfter })
      }
      case 'reuse':
        await this.audit.record({ userId: parts.userId, sessionId: parts.sessionId, action: 'session.reuse_detected', actor: 'system', outcome: 'denied', ...originOfClient(client) })
        await this.events?.announce('sessions.revoked', { userId: parts.userId, reason: 'refresh_token_reuse' })
        throw new InvalidGrant('the refresh token was already used; the session has been ended')
      case 'wrong_channel':
      case 'unknown':
        this.audit.countRefresh('invalid')
        throw new InvalidGrant('the refresh token is invalid, expired or revoked')
      default:
        return result satisfies never
    }
  }

  /**
   * Runs ROTATE for the presented token (never its secret: its hash) and reads its answer.
   * The hot path: under load the rotations of one turn of the event loop share a socket write.
   */
  private async run(parts: RefreshTokenParts, successorSecret: Buffer, client: SessionClient): Promise<RotationResult> {
    const { userId, sessionId, generation, secret, tag } = parts
    const strict = this.policy.refreshReuseGrace === 0
    const rotation = () =>
      replicatedWrite<string[]>(
        this.redis, this.waitReplicas, 'rotateRefreshToken',
        sessionKeys.session(userId, sessionId), sessionKeys.index(userId), sessionKeys.scopes(userId),
        generation, hexHashOf(secret), tag, hexHashOf(successorSecret), sealWith(secret, successorSecret).toString('hex'), client.channel,
        this.policy.refreshTokenTtl * 1000, sessionId, strict ? '1' : '0', this.policy.refreshesPerMinute,
      )
    // Within the grace, a rotation whose answer was lost (a Cluster's failover) is run again:
    // if the first ran, the second answers 'grace' with the same successor. Strict rotation
    // would take a second run after a first that ran for reuse, ending the session: it answers 503 instead.
    const [outcome, ...rest] = await inRedis(this.redis, () => gathered(this.redis, () => (strict ? rotation() : rerunIfAnswerLost(rotation))))
    switch (outcome) {
      case 'rotated':
        return { outcome: 'rotated', ...liveToken(rest) }
      case 'grace': {
        const [gen, liveTag, sealed, ...others] = rest
        return { outcome: 'grace', sealedSecret: sealed ?? '', ...liveToken([gen, liveTag, ...others]) }
      }
      case 'limited':
        return { outcome: 'limited', retryAfterMs: Number(rest[0]) }
      case 'reuse':
        return { outcome: 'reuse' }
      case 'wrong_channel':
        return { outcome: 'wrong_channel' }
      default:
        return { outcome: 'unknown' }
    }
  }
}

/** The live token's fields, in the order ROTATE returns them after its outcome (and, for grace, the sealed secret). */
function liveToken([gen, liveTag, ttl, resource, scopes, created]: (string | undefined)[]): LiveToken {
  return {
    generation: Number(gen),
    tag: liveTag ?? '',
    ttlMs: Number(ttl),
    resource: resource ?? '',
    cachedScopes: scopes ?? '',
    createdAt: Number(created),
  }
}

function issued(parts: RefreshTokenParts, live: LiveToken, secret: Buffer): IssuedRefreshToken {
  const { userId, sessionId } = parts
  return {
    userId,
    sessionId,
    resource: live.resource || undefined,
    refreshToken: composeRefreshToken({ userId, sessionId, generation: live.generation, secret, tag: live.tag }),
    refreshExpiresIn: Math.floor(live.ttlMs / 1000),
    cachedScopes: live.cachedScopes,
    authTime: Math.floor(live.createdAt / 1000),
  }
}

/** The stored form of a token secret. */
export function hashOfSecret(secret: Buffer): Buffer {
  return sha256(secret)
}

/** hashOfSecret in hex, as ROTATE takes it. */
const hexHashOf = (secret: Buffer): string => hash('sha256', secret, 'hex')

export function originOfClient(client: SessionClient): RequestOrigin {
  return { ip: client.ip, userAgent: client.label }
}
