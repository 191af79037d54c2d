// Refresh rotation as a client lives it: a lost answer never costs the session, any real
// reuse ends it, a forgery ends nothing, a session ends when its lifetime does, a user
// holds a bounded number of sessions, and a session's size in Redis does not grow.

import t from 'tap'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { composeRefreshToken, parseRefreshToken } from '../src/sessions/refresh-token.js'
import { sessionKeys } from '../verifier/session-keys.js'
import { APP_ORIGIN, loginWithGoogle, startTestGateway, type TestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite', env: { MAX_SESSIONS_PER_USER: '3' } })
t.teardown(() => gateway.close())
const { app } = gateway

const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const me = (accessToken: string) => app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } })

async function login(sub: string, headers: Record<string, string> = {}) {
  const answer = await loginWithGoogle(gateway, { sub, name: sub }, headers)
  if (answer.statusCode !== 200) throw new Error(`login failed: ${answer.body}`)
  return answer.json() as { refreshToken: string; accessToken: string; refreshExpiresIn: number; user: { id: string } }
}

t.test('a lost answer: the previous token keeps answering with the same successor until that successor is used', async (t) => {
  const { refreshToken: original } = await login('lost-answer')
  const first = await refresh(original)
  t.equal(first.statusCode, 200)
  const successor = first.json().refreshToken as string
  // The client never saw `successor`: it retries, later and more than once.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  for (let retry = 0; retry < 3; retry++) {
    const again = await refresh(original)
    t.equal(again.statusCode, 200, `retry ${retry + 1} succeeds`)
    t.equal(again.json().refreshToken, successor, 'with the same successor: one live token')
  }
  const next = await refresh(successor)
  t.equal(next.statusCode, 200, 'the successor is the live token')
  const reused = await refresh(original)
  t.equal(reused.statusCode, 401, 'once its successor was used, the previous token is reuse')
  t.match(reused.json().message, /already used/)
  t.equal((await refresh(next.json().refreshToken)).statusCode, 401, 'and reuse ended the whole session')
})

t.test('a lost answer across an upgrade: a successor sealed by the previous version (AES-GCM) is still handed back', async (t) => {
  const { refreshToken: original } = await login('sealed-before-upgrade')
  const successor = (await refresh(original)).json().refreshToken as string
  const [before, after] = [parseRefreshToken(original)!, parseRefreshToken(successor)!]
  // What the previous version stored: iv ‖ tag ‖ AES-256-GCM(successor secret) under SHA-256("seal:" ‖ predecessor secret).
  const key = createHash('sha256').update('seal:').update(before.secret).digest()
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const body = Buffer.concat([cipher.update(after.secret), cipher.final()])
  await gateway.redis.hset(sessionKeys.session(before.userId, before.sessionId), 'sealed', Buffer.concat([iv, cipher.getAuthTag(), body]))
  const again = await refresh(original)
  t.equal(again.statusCode, 200)
  t.equal(again.json().refreshToken, successor, 'the same successor')
})

t.test('a rotation stores what earlier versions read: raw SHA-256 hashes and a raw 32-byte seal (a rolling upgrade or a rollback keeps sessions)', async (t) => {
  const { refreshToken: original } = await login('stored-form')
  const successor = (await refresh(original)).json().refreshToken as string
  const [before, after] = [parseRefreshToken(original)!, parseRefreshToken(successor)!]
  const key = sessionKeys.session(before.userId, before.sessionId)
  const sha256 = (...parts: (string | Buffer)[]) => parts.reduce((digest, part) => digest.update(part), createHash('sha256')).digest()
  const [live, prev, sealed] = await gateway.redis.hmgetBuffer(key, 'live', 'prev', 'sealed')
  t.same(live, sha256(after.secret), "the live token's hash, as 32 bytes")
  t.same(prev, sha256(before.secret), "its predecessor's hash, as 32 bytes")
  const pad = sha256('seal:', before.secret)
  t.same(sealed, Buffer.from(after.secret.map((byte, index) => byte ^ pad[index]!)), 'the successor sealed with its predecessor, as 32 bytes')
})

t.test('REFRESH_REUSE_GRACE=0: strict rotation, the previous token is reuse at once', async (t) => {
  const strict = await startTestGateway({ database: 'pglite', env: { REFRESH_REUSE_GRACE: '0' } })
  t.teardown(() => strict.close())
  const { refreshToken } = (await loginWithGoogle(strict, { sub: 'strict', name: 'Strict' })).json()
  const rotate = (token: string) => strict.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: token } })
  const successor = (await rotate(refreshToken)).json().refreshToken as string
  t.equal((await rotate(refreshToken)).statusCode, 401)
  t.equal((await rotate(successor)).statusCode, 401, 'the family is gone')
})

t.test('a forged token with a real session id and a guessed generation ends nothing', async (t) => {
  const { refreshToken } = await login('forgery-target')
  const live = (await refresh(refreshToken)).json().refreshToken as string
  const parts = parseRefreshToken(live)!
  const forgeries = [0, 1, 2, 7].map((generation) =>
    composeRefreshToken({ ...parts, generation, secret: randomBytes(32), tag: randomBytes(16).toString('hex') }),
  )
  // The genuine secret under another generation, and a genuine-looking tag without its secret.
  forgeries.push(composeRefreshToken({ ...parts, generation: 0 }), composeRefreshToken({ ...parts, secret: randomBytes(32), generation: 0 }))
  for (const forged of forgeries) t.equal((await refresh(forged)).statusCode, 401, 'the forgery is refused')
  const afterwards = await refresh(live)
  t.equal(afterwards.statusCode, 200, 'and the session lives on')
  t.ok(await gateway.redis.exists(sessionKeys.session(parts.userId, parts.sessionId)))
})

t.test('a rotated token presented on the other channel is reuse; the live one there is only refused', async (t) => {
  const { refreshToken: original } = await login('channel-hop')
  const live = (await refresh(original)).json().refreshToken as string
  const viaCookie = (token: string) =>
    app.inject({ method: 'POST', url: '/auth/token', headers: { origin: APP_ORIGIN }, cookies: { [gateway.services.browser.cookie.name]: token } })
  t.equal((await viaCookie(live)).statusCode, 401, 'a body token is not a cookie token')
  t.equal((await refresh(live)).statusCode, 200, 'and refusing it ended nothing')
  const { refreshToken: other } = await login('channel-hop-2')
  const next = (await refresh(other)).json().refreshToken as string
  t.equal((await viaCookie(other)).statusCode, 401, 'the previous token on the cookie channel')
  t.equal((await refresh(next)).statusCode, 401, 'ended the session: it is reuse')
})

t.test('SESSION_MAX_AGE: a session ends at its absolute end however often it is refreshed', async (t) => {
  const { refreshToken } = await login('old-session')
  const { userId, sessionId } = parseRefreshToken(refreshToken)!
  const key = sessionKeys.session(userId, sessionId)
  const [seconds] = await gateway.redis.time()
  // The session started long ago: 30 s of its lifetime are left.
  await gateway.redis.hset(key, 'exp', Number(seconds) * 1000 + 30_000)
  const near = await refresh(refreshToken)
  t.equal(near.statusCode, 200)
  t.ok(near.json().refreshExpiresIn <= 30, `the successor lives no longer than the session (${near.json().refreshExpiresIn} s)`)
  t.ok((await gateway.redis.pttl(key)) <= 30_000, 'nor does its record')
  await gateway.redis.hset(key, 'exp', Number(seconds) * 1000 - 1)
  t.equal((await refresh(near.json().refreshToken)).statusCode, 401, 'past its end the live token is refused')
})

t.test('MAX_SESSIONS_PER_USER: a login beyond it ends the least recently used session, audited', async (t) => {
  const devices = []
  for (const device of ['one', 'two', 'three']) devices.push(await login('many-devices', { 'user-agent': `Device/${device}` }))
  const [one, two, three] = devices as [(typeof devices)[0], (typeof devices)[0], (typeof devices)[0]]
  const refreshedOne = await refresh(one.refreshToken)
  t.equal(refreshedOne.statusCode, 200, 'device one was used again: device two is now the least recently used')
  const four = await login('many-devices', { 'user-agent': 'Device/four' })

  t.equal((await refresh(two.refreshToken)).statusCode, 401, "the evicted session's refresh token fails")
  t.equal((await me(two.accessToken)).statusCode, 401, 'and its access token is refused at once')
  for (const [name, token] of [['one', refreshedOne.json().refreshToken], ['three', three.refreshToken], ['four', four.refreshToken]]) {
    t.equal((await refresh(token!)).statusCode, 200, `device ${name} stays signed in`)
  }
  const listed = await app.inject({ method: 'GET', url: '/auth/sessions', headers: { authorization: `Bearer ${four.accessToken}` } })
  t.same(listed.json().sessions.map((session: { client: string }) => session.client).sort(), ['Device/four', 'Device/one', 'Device/three'])
  const evicted = await gateway.database.prisma.auditEvent.findMany({ where: { userId: four.user.id, action: 'session.evicted' } })
  t.same(evicted.map((event) => event.sessionId), [parseRefreshToken(two.refreshToken)!.sessionId], 'the eviction is in the audit trail')
})

t.test('MAX_SESSIONS_PER_USER: a session that ran out by itself does not count; a live one never used again does', async (t) => {
  const devices = []
  for (const device of ['old', 'idle', 'busy']) devices.push(await login('cap-counting', { 'user-agent': `Device/${device}` }))
  const [old, idle, busy] = devices as [(typeof devices)[0], (typeof devices)[0], (typeof devices)[0]]
  const key = (token: string) => {
    const { userId, sessionId } = parseRefreshToken(token)!
    return sessionKeys.session(userId, sessionId)
  }
  // The old device's session ran out (Redis expired it); the idle one lives but carries no last use.
  await gateway.redis.del(key(old.refreshToken))
  await gateway.redis.hdel(key(idle.refreshToken), 'lastUsed')
  const busyNext = (await refresh(busy.refreshToken)).json().refreshToken as string
  await login('cap-counting', { 'user-agent': 'Device/new' })
  t.equal((await refresh(busyNext)).statusCode, 200, 'three live sessions with the new one: nobody is evicted')
  await login('cap-counting', { 'user-agent': 'Device/newer' })
  t.equal((await refresh(idle.refreshToken)).statusCode, 401, 'a fourth: the session without a last use goes first')
})

t.test("a session refreshed after its user's session index would have run out is still ended by a logout everywhere", async (t) => {
  const { refreshToken, accessToken } = await login('index-keeper')
  const { userId, sessionId } = parseRefreshToken(refreshToken)!
  const index = sessionKeys.index(userId)
  // Weeks later: the lead the session gave its index is used up, and the index has 3 s left.
  await gateway.redis.hset(sessionKeys.session(userId, sessionId), 'indexUntil', '0')
  await gateway.redis.pexpire(index, 3000)
  const refreshed = await refresh(refreshToken)
  t.equal(refreshed.statusCode, 200)
  const ttlMs = refreshed.json().refreshExpiresIn * 1000
  const indexTtl = await gateway.redis.pttl(index)
  t.ok(indexTtl >= ttlMs && indexTtl <= ttlMs * (17 / 16) + 1000, `the index lives as long as the session, by at most a sixteenth more (${indexTtl} ms for ${ttlMs} ms)`)
  await new Promise((resolve) => setTimeout(resolve, 3100))
  const everywhere = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(everywhere.statusCode, 204)
  t.equal((await refresh(refreshed.json().refreshToken)).statusCode, 401, 'the logout everywhere found the session and ended it')
})

/** Bytes a user with one session costs in Redis: every key of that user (session, index, scope cache). */
async function bytesOfUser(gateway: TestGateway, userId: string): Promise<number> {
  const keys = await gateway.redis.keys(`gw:{${userId}}:*`)
  const sizes = await Promise.all(keys.map((key) => gateway.redis.memory('USAGE', key)))
  return sizes.reduce<number>((sum, size) => sum + Number(size ?? 0), 0)
}

t.test('a session costs the same bytes after 1 or 1,000 rotations, at most 1 KB', async (t) => {
  // The longest device label a session keeps.
  const label = `Mozilla/5.0 (Linux; Android 14; SM-S928N) AppleWebKit/537.36 (KHTML, like Gecko) 한국어 ${'x'.repeat(300)}`
  let { refreshToken } = await login('byte-counter', { 'user-agent': label })
  const { userId } = parseRefreshToken(refreshToken)!
  refreshToken = (await refresh(refreshToken)).json().refreshToken
  const afterOne = await bytesOfUser(gateway, userId)
  for (let rotation = 1; rotation < 1000; rotation++) refreshToken = (await refresh(refreshToken)).json().refreshToken
  t.equal(parseRefreshToken(refreshToken)!.generation, 1000)
  const afterThousand = await bytesOfUser(gateway, userId)
  t.comment(`bytes per session: ${afterOne} after 1 rotation, ${afterThousand} after 1,000`)
  t.ok(afterOne <= 1024, `at most 1 KB after 1 rotation (${afterOne})`)
  t.ok(afterThousand <= afterOne + 16, `no growth with rotations beyond number widths (${afterThousand})`)
})

t.test('a refresh is one Redis command: the rotation also counts the refresh and returns the cached scopes', async (t) => {
  let { refreshToken } = await login('one-round-trip')
  refreshToken = (await refresh(refreshToken)).json().refreshToken // scripts loaded, scopes cached
  // Every command the gateway's client sends, counted on its way out.
  const sent: string[] = []
  const sendCommand = gateway.redis.sendCommand.bind(gateway.redis)
  gateway.redis.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    sent.push(command.name)
    return (sendCommand as (...args: unknown[]) => unknown)(command, ...rest)
  }) as typeof gateway.redis.sendCommand
  t.teardown(() => void (gateway.redis.sendCommand = sendCommand))
  const answer = await refresh(refreshToken)
  t.equal(answer.statusCode, 200)
  t.same(sent, ['evalsha'], 'one command for the whole refresh')
})
