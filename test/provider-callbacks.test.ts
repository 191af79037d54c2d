// Kakao's unlink callback: only Kakao (the app's admin key, one of our app ids) is heard;
// the Kakao identity is unlinked and the user's sessions end; for the only identity
// LAST_IDENTITY_REVOKED decides between deleting the account and keeping it; a user we do
// not know is a 200 that changes nothing.

import t from 'tap'
import { startTestGateway, type TestGateway } from './support/gateway.js'
import { KAKAO_APP, startKakao } from './support/kakao.js'

const KAKAO = KAKAO_APP
const ADMIN_KEY = 'kakao-admin-key-0123456789'
const { kakao, env: kakaoEnv } = await startKakao({ KAKAO_ADMIN_KEY: ADMIN_KEY })
t.teardown(() => kakao.stop())
const gateway = await startTestGateway({ database: 'pglite', env: kakaoEnv })
t.teardown(() => gateway.close())
const prisma = gateway.database.prisma

let nextMember = 7_000_000_000n

/** A Kakao member who logged in through the native SDK: their user id and refresh token. */
async function kakaoUser(gw: TestGateway = gateway) {
  const id = String(nextMember++)
  const { accessToken } = await kakao.sdkLogin({ id, nickname: `member ${id}` })
  const response = await gw.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', accessToken } })
  if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode} ${response.body}`)
  const { user, refreshToken } = response.json()
  return { memberId: id, userId: user.id as string, refreshToken: refreshToken as string }
}

/** `authorization` null: no Authorization header at all. */
const unlink = (fields: Record<string, string>, authorization: string | null = `KakaoAK ${ADMIN_KEY}`, gw: TestGateway = gateway) =>
  gw.app.inject({
    method: 'POST',
    url: '/webhooks/kakao/unlink',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization === null ? {} : { authorization }) },
    payload: new URLSearchParams(fields).toString(),
  })

const refresh = (refreshToken: string, gw: TestGateway = gateway) =>
  gw.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

const identitiesOf = (userId: string, gw: TestGateway = gateway) =>
  gw.database.prisma.identity.findMany({ where: { user: { publicId: userId } }, select: { provider: true } })

t.test('only Kakao is heard: a wrong or missing admin key is 401, a foreign app id 400, and nothing changes', async (t) => {
  const member = await kakaoUser()
  const fields = { app_id: KAKAO.appId, user_id: member.memberId, referrer_type: 'UNLINK_FROM_APPS' }
  for (const [what, authorization] of [
    ['no Authorization', null],
    ['another key', 'KakaoAK not-the-admin-key'],
    ['the key under another scheme', `Bearer ${ADMIN_KEY}`],
    ['the key alone', ADMIN_KEY],
  ] as const) {
    const refused = await unlink(fields, authorization)
    t.equal(refused.statusCode, 401, what)
    t.match(refused.json(), { error: 'invalid_token', message: String }, what)
  }
  const foreignApp = await unlink({ ...fields, app_id: '999' })
  t.equal(foreignApp.statusCode, 400)
  const notAMember = await unlink({ ...fields, user_id: 'abc' })
  t.equal(notAMember.statusCode, 400)
  const repeated = await gateway.app.inject({
    method: 'POST',
    url: '/webhooks/kakao/unlink',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `KakaoAK ${ADMIN_KEY}` },
    payload: `app_id=${KAKAO.appId}&user_id=${member.memberId}&user_id=1`,
  })
  t.equal(repeated.statusCode, 400, 'a repeated field is refused')
  t.same(await identitiesOf(member.userId), [{ provider: 'kakao' }], 'the identity is still linked')
  t.equal((await refresh(member.refreshToken)).statusCode, 200, 'and the session still works')
})

t.test('a member we do not know is a 200 that changes nothing', async (t) => {
  const users = await prisma.user.count()
  const response = await unlink({ app_id: KAKAO.appId, user_id: '123456789', referrer_type: 'ACCOUNT_DELETE' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { outcome: 'unknown' })
  t.equal(await prisma.user.count(), users)
})

t.test('a user with another identity: Kakao is unlinked, every session ends, the account stays', async (t) => {
  const member = await kakaoUser()
  const user = await prisma.user.findUniqueOrThrow({ where: { publicId: member.userId } })
  await prisma.identity.create({ data: { provider: 'google', subject: `google-of-${member.memberId}`, userId: user.id } })
  // GET, as Kakao may call it.
  const response = await gateway.app.inject({
    method: 'GET',
    url: `/webhooks/kakao/unlink?app_id=${KAKAO.appId}&user_id=${member.memberId}&referrer_type=UNLINK_FROM_APPS`,
    headers: { authorization: `KakaoAK ${ADMIN_KEY}` },
  })
  t.equal(response.statusCode, 200, { body: response.body })
  t.same(response.json(), { outcome: 'unlinked' })
  t.same(await identitiesOf(member.userId), [{ provider: 'google' }], 'the Kakao identity is gone, the other stays')
  const refreshed = await refresh(member.refreshToken)
  t.equal(refreshed.statusCode, 401, 'the session ended')
  const audit = await prisma.auditEvent.findFirst({ where: { userId: member.userId, action: 'identity.unlinked' } })
  t.match(audit, { actor: 'provider:kakao', outcome: 'success', detail: 'kakao: UNLINK_FROM_APPS' })

  const again = await unlink({ app_id: KAKAO.appId, user_id: member.memberId })
  t.same(again.json(), { outcome: 'unknown' }, 'a repeated callback finds nothing more to do')
})

t.test('the only identity: the account is deleted (LAST_IDENTITY_REVOKED=delete), with no cleanup job for Kakao', async (t) => {
  const member = await kakaoUser()
  const response = await unlink({ app_id: KAKAO.appId, user_id: member.memberId, referrer_type: 'ACCOUNT_DELETE' })
  t.equal(response.statusCode, 200, { body: response.body })
  t.same(response.json(), { outcome: 'deleted' })
  t.equal(await prisma.user.count({ where: { publicId: member.userId } }), 0, 'the account is gone')
  t.equal((await refresh(member.refreshToken)).statusCode, 401, 'the session ended')
  const jobs = await prisma.job.findMany()
  t.notOk(jobs.some((job) => job.payload.includes(member.memberId)), 'Kakao already ended its side: no unlink job for it')
  t.match(await prisma.auditEvent.findFirst({ where: { userId: member.userId, action: 'user.deleted' } }), { actor: 'provider:kakao' })
})

t.test("INCOMPLETE_SIGN_UP (Kakao's own unlink of a member whose profile was never read) changes nothing: the next login finds the account", async (t) => {
  const member = await kakaoUser()
  const response = await unlink({ app_id: KAKAO.appId, user_id: member.memberId, referrer_type: 'INCOMPLETE_SIGN_UP' })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { outcome: 'ignored' })
  t.same(await identitiesOf(member.userId), [{ provider: 'kakao' }], 'the identity stays')
  t.equal((await refresh(member.refreshToken)).statusCode, 200, 'the session too')
})

t.test('LAST_IDENTITY_REVOKED=keep: the account stays without identities, its sessions end', async (t) => {
  const keeping = await startTestGateway({ database: 'pglite', env: { ...kakaoEnv, LAST_IDENTITY_REVOKED: 'keep' } })
  t.teardown(() => keeping.close())
  const member = await kakaoUser(keeping)
  const response = await unlink({ app_id: KAKAO.appId, user_id: member.memberId, referrer_type: 'UNLINK_FROM_ADMIN' }, `KakaoAK ${ADMIN_KEY}`, keeping)
  t.same(response.json(), { outcome: 'unlinked' })
  t.equal(await keeping.database.prisma.user.count({ where: { publicId: member.userId } }), 1, 'the account is kept')
  t.same(await identitiesOf(member.userId, keeping), [], 'without identities')
  t.equal((await refresh(member.refreshToken, keeping)).statusCode, 401, 'the session ended')
})

t.test('without KAKAO_ADMIN_KEY the callback is refused', async (t) => {
  const { KAKAO_ADMIN_KEY: _unset, ...withoutKey } = kakaoEnv
  const closed = await startTestGateway({ database: 'pglite', env: withoutKey })
  t.teardown(() => closed.close())
  const member = await kakaoUser(closed)
  const response = await unlink({ app_id: KAKAO.appId, user_id: member.memberId }, `KakaoAK ${ADMIN_KEY}`, closed)
  t.equal(response.statusCode, 401)
  t.same(await identitiesOf(member.userId, closed), [{ provider: 'kakao' }])
})

t.test("Kakao's own call over HTTP, as the emulator makes it, unlinks the member", async (t) => {
  const listening = await startTestGateway({ database: 'pglite', env: kakaoEnv })
  t.teardown(() => listening.close())
  const address = await listening.app.listen({ port: 0, host: '127.0.0.1' })
  const member = await kakaoUser(listening)
  const status = await kakao.sendUnlinkCallback(`${address}/webhooks/kakao/unlink`, { id: member.memberId, referrerType: 'ACCOUNT_DELETE' }, ADMIN_KEY)
  t.equal(status, 200)
  t.equal(await listening.database.prisma.user.count({ where: { publicId: member.userId } }), 0, 'the only identity went: the account is deleted')
  t.equal(await kakao.sendUnlinkCallback(`${address}/webhooks/kakao/unlink`, { id: member.memberId }, 'wrong-key'), 401)
})
