// Deleting an account, by its owner (DELETE /auth/me, only right after a login: the access
// token's auth_time) or by an operator (DELETE /admin/users/{userId}): every session ends at
// once, the user and its identities are gone, one provider.cleanup job per identity keeps what
// the provider's side needs (the Apple grant still sealed), and the audit trail keeps that the
// account was deleted but no address or device of its owner.

import { createHash, randomBytes } from 'node:crypto'
import * as jose from 'jose'
import t, { type Test } from 'tap'
import { EMULATED_CREDENTIALS } from '../emulators/providers.js'
import { ClientDirectory } from '../src/clients/client-directory.js'
import { APP_ORIGIN, loginWithGoogle, startTestGateway } from './support/gateway.js'

const ENCRYPTION_KEY = { kty: 'oct', kid: 'test-enc-1', k: randomBytes(32).toString('base64url') }
// No delivery here (JOB_CONCURRENCY=0): these tests read the jobs exactly as the deletion wrote them; delivery is provider-cleanup.test.ts's.
const gateway = await startTestGateway({ database: 'pglite', apple: true, env: { ENCRYPTION_KEYS: JSON.stringify({ keys: [ENCRYPTION_KEY] }), JOB_CONCURRENCY: '0' } })
t.teardown(() => gateway.close())
const { app } = gateway
const { prisma } = gateway.database
const { accessTokens, sessions } = gateway.services
const apple = gateway.apple!
const REFRESH_COOKIE = '__Secure-refresh_token'
const JWE = /^[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/

const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })
const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const refreshCookie = (value: string) => app.inject({ method: 'POST', url: '/auth/token', cookies: { [REFRESH_COOKIE]: value }, headers: { origin: APP_ORIGIN } })
const me = (accessToken: string) => app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })
const deleteMe = (accessToken: string, headers: Record<string, string> = {}) => app.inject({ method: 'DELETE', url: '/auth/me', headers: { ...bearer(accessToken), ...headers } })
const nowSeconds = () => Math.floor(Date.now() / 1000)

const clients = new ClientDirectory(prisma)
const ops = await clients.create('ops')
await clients.grant(ops.clientId, gateway.config.tokenAudience, ['admin'])
const tokenResponse = await app.inject({
  method: 'POST',
  url: '/oauth/token',
  headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${ops.clientId}:${ops.clientSecret}`).toString('base64')}` },
  payload: 'grant_type=client_credentials',
})
const adminToken = tokenResponse.json().access_token as string
const adminDelete = (userId: string, headers: Record<string, string> = bearer(adminToken)) => app.inject({ method: 'DELETE', url: `/admin/users/${userId}`, headers })

/** A Google login (native unless `headers` has an Origin): tokens, user id and session id. */
async function google(sub: string, headers: Record<string, string> = {}) {
  const response = await loginWithGoogle(gateway, { sub, name: `User ${sub}` }, { 'user-agent': `Device-${sub}/1.0`, ...headers })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  const body = response.json()
  const cookie = response.cookies.find((c) => c.name === REFRESH_COOKIE)?.value
  return { userId: body.user.id as string, sessionId: jose.decodeJwt(body.accessToken).sid as string, cookie, accessToken: body.accessToken as string, refreshToken: body.refreshToken as string }
}

/** The provider.cleanup jobs written for these subjects, payloads parsed. */
async function cleanupJobs(...subjects: string[]) {
  const rows = await prisma.job.findMany({ where: { kind: 'provider.cleanup' }, orderBy: { id: 'asc' } })
  return rows.map((row) => ({ raw: row.payload, ...(JSON.parse(row.payload) as { provider: string; subject: string; sealedGrant?: string }) })).filter((job) => subjects.includes(job.subject))
}

/** What deletion would change, to show that a refused call changed nothing. */
async function footprint(userId: string, subject: string) {
  return {
    user: await prisma.user.count({ where: { publicId: userId } }),
    identities: await prisma.identity.count({ where: { user: { publicId: userId } } }),
    sessions: (await sessions.list(userId)).length,
    jobs: (await cleanupJobs(subject)).length,
    deleted: await prisma.auditEvent.count({ where: { userId, action: 'user.deleted' } }),
  }
}

/** Checks that the account is gone (rows, sessions in Redis) and that its jobs and user.deleted row are left behind. */
async function assertDeleted(t: Test, userId: string, subjects: string[], actor: string) {
  t.equal(await prisma.user.count({ where: { publicId: userId } }), 0, 'the user row is gone')
  t.equal(await prisma.identity.count({ where: { subject: { in: subjects } } }), 0, 'and its identity rows')
  t.same(await sessions.list(userId), [], 'no session of the user is left in Redis')
  t.same((await cleanupJobs(...subjects)).map((job) => job.subject).sort(), [...subjects].sort(), 'one provider.cleanup job per identity')
  const deleted = await prisma.auditEvent.findMany({ where: { userId, action: 'user.deleted' } })
  t.match(deleted, [{ actor, outcome: 'success' }], `user.deleted is audited once, actor ${actor}`)
  t.equal(deleted.length, 1)
}

t.test('access tokens carry auth_time, the login time; a refresh keeps it while iat moves on', async (t) => {
  const before = nowSeconds()
  const login = await google('auth-time')
  const first = jose.decodeJwt(login.accessToken)
  t.type(first.auth_time, 'number')
  t.ok((first.auth_time as number) >= before && (first.auth_time as number) <= nowSeconds(), 'auth_time is the login time, in seconds')
  await new Promise((resolve) => setTimeout(resolve, 1_100))
  const refreshed = await refresh(login.refreshToken)
  t.equal(refreshed.statusCode, 200)
  const second = jose.decodeJwt(refreshed.json().accessToken)
  t.ok(second.iat! > first.iat!, 'a new iat')
  t.equal(second.auth_time, first.auth_time, 'the same auth_time: the login is not renewed by a refresh')
  const again = jose.decodeJwt((await refresh(refreshed.json().refreshToken)).json().accessToken)
  t.equal(again.auth_time, first.auth_time, 'after any number of refreshes')
})

t.test('DELETE /auth/me ends every session, removes user and identities, writes cleanup jobs and anonymises the trail', async (t) => {
  const phone = await google('leaver')
  const browser = await google('leaver', { origin: APP_ORIGIN })
  t.equal(browser.userId, phone.userId, 'one account, two sessions')
  t.ok(browser.cookie, 'the browser holds its refresh token as a cookie')
  // Link Apple natively, with a code: the gateway keeps Apple's grant, sealed.
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await apple.nativeSignIn(EMULATED_CREDENTIALS.apple.bundleId, { sub: '001234.leaver', email: 'leaver@example.com', name: { firstName: 'Lee' } }, { nonce: createHash('sha256').update(rawNonce).digest('hex') })
  const linked = await app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(phone.accessToken), payload: { provider: 'apple', idToken: signIn.identityToken, nonce: rawNonce, code: signIn.authorizationCode } })
  t.equal(linked.statusCode, 201, { body: linked.body })
  const kept = await prisma.identity.findUnique({ where: { provider_subject: { provider: 'apple', subject: '001234.leaver' } } })
  t.match(kept?.sealedGrant, JWE, 'the Apple grant is kept, sealed')
  const { plaintext } = await jose.compactDecrypt(kept!.sealedGrant!, Buffer.from(ENCRYPTION_KEY.k, 'base64url'))
  const appleRefreshToken = (JSON.parse(new TextDecoder().decode(plaintext)) as { refreshToken?: string }).refreshToken
  t.ok(appleRefreshToken, 'it holds an Apple refresh token')
  const traced = { userId: phone.userId, OR: [{ ip: { not: null } }, { userAgent: { not: null } }] }
  t.ok((await prisma.auditEvent.count({ where: traced })) > 0, 'before deletion, the trail holds addresses and devices')
  const trail = await prisma.auditEvent.count({ where: { userId: phone.userId } })

  const deleted = await deleteMe(browser.accessToken, { origin: APP_ORIGIN })
  t.equal(deleted.statusCode, 204, { body: deleted.body })
  t.equal(deleted.headers['cache-control'], 'no-store')
  const cleared = deleted.cookies.find((cookie) => cookie.name === REFRESH_COOKIE)
  t.ok(cleared && cleared.value === '' && (cleared.maxAge === 0 || (cleared.expires !== undefined && cleared.expires.getTime() <= Date.now())), 'the refresh cookie is cleared')

  await assertDeleted(t, phone.userId, ['leaver', '001234.leaver'], 'user')
  for (const [what, answer] of [['phone', await refresh(phone.refreshToken)], ['browser', await refreshCookie(browser.cookie!)]] as const) {
    t.equal(answer.statusCode, 401, `${what}: the refresh token is dead`)
    t.equal(answer.json().error, 'invalid_grant', what)
  }
  for (const token of [phone.accessToken, browser.accessToken]) {
    t.equal((await me(token)).statusCode, 401, 'GET /auth/me refuses the old access token at once')
    t.equal((await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(token) })).statusCode, 401, 'and GET /auth/sessions')
  }

  const jobs = await cleanupJobs('leaver', '001234.leaver')
  t.match(jobs.find((job) => job.provider === 'google'), { provider: 'google', subject: 'leaver' })
  const appleJob = jobs.find((job) => job.provider === 'apple')
  t.match(appleJob, { provider: 'apple', subject: '001234.leaver', sealedGrant: JWE }, 'the Apple job carries the grant, still sealed')
  t.equal(appleJob?.sealedGrant, kept!.sealedGrant)
  t.notOk(appleJob!.raw.includes(appleRefreshToken!), "Apple's refresh token is never in the clear")

  t.ok((await prisma.auditEvent.count({ where: { userId: phone.userId } })) > trail, 'the trail stays')
  t.equal(await prisma.auditEvent.count({ where: traced }), 0, 'but no row of the user keeps an ip or a userAgent')
})

t.test('deleting needs a recent login: auth_time over 10 minutes old, or none, is refused and deletes nothing', async (t) => {
  const login = await google('stale')
  const before = await footprint(login.userId, 'stale')
  t.match(before, { user: 1, identities: 1, sessions: 1, jobs: 0, deleted: 0 })
  const old = await accessTokens.issue({ userId: login.userId, sessionId: login.sessionId, authTime: nowSeconds() - 601 })
  const legacy = await accessTokens.issue({ userId: login.userId, sessionId: login.sessionId })
  t.equal(jose.decodeJwt(legacy.accessToken).auth_time, undefined, 'a token from before the claim')
  for (const [what, token] of [['auth_time 601 s old', old.accessToken], ['no auth_time', legacy.accessToken]] as const) {
    const refused = await deleteMe(token)
    t.equal(refused.statusCode, 401, what)
    t.equal(refused.json().error, 'reauthentication_required', what)
    t.same(await footprint(login.userId, 'stale'), before, `${what}: nothing deleted`)
    t.equal((await me(login.accessToken)).statusCode, 200, `${what}: the session goes on`)
  }
  const recent = await accessTokens.issue({ userId: login.userId, sessionId: login.sessionId, authTime: nowSeconds() - 540 })
  t.equal((await deleteMe(recent.accessToken)).statusCode, 204, 'a login 9 minutes ago is recent enough')
  await assertDeleted(t, login.userId, ['stale'], 'user')
})

t.test('an operator deletes a user with an admin token; an unknown user is 404; no admin credential deletes nothing', async (t) => {
  const first = await google('operated')
  const second = await google('operated')
  const before = await footprint(first.userId, 'operated')
  t.match(before, { user: 1, identities: 1, sessions: 2 })
  const anonymous = await adminDelete(first.userId, {})
  t.equal(anonymous.statusCode, 401, 'no credential')
  const asUser = await adminDelete(first.userId, bearer(first.accessToken))
  t.equal(asUser.statusCode, 403, "a user's own token is no admin credential")
  t.same(await footprint(first.userId, 'operated'), before, 'nothing was deleted')

  const unknown = await adminDelete('AAAAAAAAAAAAAAAAAAAAAA')
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().error, 'not_found')
  t.equal(await prisma.auditEvent.count({ where: { userId: 'AAAAAAAAAAAAAAAAAAAAAA' } }), 0, 'an unknown id ends and records nothing')

  const deleted = await adminDelete(first.userId)
  t.equal(deleted.statusCode, 204, { body: deleted.body })
  await assertDeleted(t, first.userId, ['operated'], `client:${ops.clientId}`)
  for (const login of [first, second]) {
    const answer = await refresh(login.refreshToken)
    t.equal(answer.statusCode, 401)
    t.equal(answer.json().error, 'invalid_grant')
    t.equal((await me(login.accessToken)).statusCode, 401)
  }
})

t.test('logging in again with the same identity after deletion makes a new account', async (t) => {
  const old = await google('returning')
  t.equal((await deleteMe(old.accessToken)).statusCode, 204)
  const response = await loginWithGoogle(gateway, { sub: 'returning', name: 'User returning' })
  t.equal(response.statusCode, 200)
  const fresh = response.json()
  t.equal(fresh.isNewUser, true, 'a new user')
  t.not(fresh.user.id, old.userId, 'with a new id')
  t.equal(await prisma.user.count({ where: { publicId: old.userId } }), 0, 'the old account did not come back')
  const identity = await prisma.identity.findUnique({ where: { provider_subject: { provider: 'google', subject: 'returning' } }, include: { user: true } })
  t.equal(identity?.user.publicId, fresh.user.id, 'the identity belongs to the new account')
  t.match((await me(fresh.accessToken)).json(), { id: fresh.user.id, identities: [{ provider: 'google' }] })
  t.equal((await refresh(old.refreshToken)).statusCode, 401, "the old account's sessions stay dead")
  t.equal((await me(old.accessToken)).statusCode, 401)
})

t.test('deleting twice: the second call is refused (its session is gone) and changes nothing', async (t) => {
  const login = await google('twice')
  t.equal((await deleteMe(login.accessToken)).statusCode, 204)
  const after = { ...(await footprint(login.userId, 'twice')), audit: await prisma.auditEvent.count({ where: { userId: login.userId } }), jobsTotal: await prisma.job.count() }
  t.match(after, { user: 0, jobs: 1, deleted: 1 })
  const again = await deleteMe(login.accessToken)
  t.equal(again.statusCode, 401)
  t.equal(again.json().error, 'invalid_token')
  t.same({ ...(await footprint(login.userId, 'twice')), audit: await prisma.auditEvent.count({ where: { userId: login.userId } }), jobsTotal: await prisma.job.count() }, after, 'no job, no audit row, nothing')
})

t.test('bad input: no bearer is 401 invalid_token; a malformed user id is 400', async (t) => {
  const users = await prisma.user.count()
  for (const headers of [{}, { authorization: 'Basic Zm9vOmJhcg==' }, { authorization: 'Bearer not-a-token' }]) {
    const refused = await app.inject({ method: 'DELETE', url: '/auth/me', headers })
    t.equal(refused.statusCode, 401, JSON.stringify(headers))
    t.match(refused.headers['content-type'], /^application\/json/)
    t.match(refused.json(), { error: 'invalid_token', message: String })
  }
  for (const id of ['bad%20id', 'a.b', 'x'.repeat(65), '%00']) {
    const refused = await adminDelete(id)
    t.equal(refused.statusCode, 400, id)
    t.match(refused.json(), { error: 'invalid_request', message: String }, id)
  }
  t.equal(await prisma.user.count(), users, 'nobody was deleted')
})
