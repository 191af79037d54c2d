// Deleting an account: at once and for good. Every session ends (refresh 401, the access
// token refused), the user and identities are gone, the provider cleanup is written as a
// job beside the delete, and the audit trail keeps the deletion but no address or device.
// The user needs a recent login (auth_time); an operator does not.

import { createHash, randomBytes } from 'node:crypto'
import * as jose from 'jose'
import t from 'tap'
import { ClientDirectory } from '../src/clients/client-directory.js'
import { EMULATED_CREDENTIALS } from '../emulators/providers.js'
import { APP_ORIGIN, loginWithGoogle, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite', apple: true })
t.teardown(() => gateway.close())
const { app } = gateway
const { prisma } = gateway.database
const apple = gateway.apple!

const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}`, 'user-agent': 'phone/1' })
const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const deleteMe = (accessToken: string) => app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(accessToken) })

/** A user signed in twice (two sessions) with Google, plus an Apple identity with a kept grant. */
async function userWithTwoSessions(sub: string) {
  const first = (await loginWithGoogle(gateway, { sub, name: `User ${sub}` }, { 'user-agent': 'phone/1' })).json()
  const second = (await loginWithGoogle(gateway, { sub, name: `User ${sub}` })).json()
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await apple.nativeSignIn(EMULATED_CREDENTIALS.apple.bundleId, { sub: `apple-${sub}` }, { nonce: createHash('sha256').update(rawNonce).digest('hex') })
  const linked = await app.inject({
    method: 'POST',
    url: '/auth/identities',
    headers: bearer(first.accessToken),
    payload: { provider: 'apple', idToken: signIn.identityToken, nonce: rawNonce, code: signIn.authorizationCode },
  })
  if (linked.statusCode !== 201) throw new Error(`link: ${linked.statusCode} ${linked.body}`)
  return { userId: first.user.id as string, first, second }
}

t.test('access tokens carry auth_time, and a refresh keeps it', async (t) => {
  const login = (await loginWithGoogle(gateway, { sub: 'auth-time', name: 'Tim' })).json()
  const before = jose.decodeJwt(login.accessToken)
  t.type(before.auth_time, 'number')
  t.ok(Math.abs(Number(before.auth_time) - Date.now() / 1000) < 5, 'the time of this login')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const after = jose.decodeJwt((await refresh(login.refreshToken)).json().accessToken)
  t.equal(after.auth_time, before.auth_time, 'the login time, not the refresh time')
  t.ok(Number(after.iat) > Number(before.iat))
})

t.test('DELETE /auth/me ends every session, removes the account, keeps the cleanup as a job and the trail without addresses', async (t) => {
  const { userId, first, second } = await userWithTwoSessions('deleted-1')
  t.ok(await prisma.auditEvent.count({ where: { userId, NOT: { ip: null } } }), 'the trail had addresses before')

  const response = await app.inject({ method: 'DELETE', url: '/auth/me', headers: { ...bearer(first.accessToken), origin: APP_ORIGIN } })
  t.equal(response.statusCode, 204, { body: response.body })
  t.match(String(response.headers['set-cookie']), /refresh_token=;/, 'a browser loses its refresh cookie')

  t.equal(await prisma.user.count({ where: { publicId: userId } }), 0, 'the user is gone')
  t.equal(await prisma.identity.count({ where: { subject: { in: ['deleted-1', 'apple-deleted-1'] } } }), 0, 'and the identities')
  for (const session of [first, second]) {
    t.equal((await refresh(session.refreshToken)).statusCode, 401, 'every refresh token is dead')
  }
  t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(second.accessToken) })).statusCode, 401, 'access tokens are refused at once')

  const jobs = (await prisma.job.findMany({ where: { kind: 'provider.cleanup' } })).map((job) => JSON.parse(job.payload))
  const mine = jobs.filter((job) => job.subject === 'deleted-1' || job.subject === 'apple-deleted-1')
  t.same(mine.map((job) => job.provider).sort(), ['apple', 'google'], 'one cleanup job per identity')
  const appleJob = mine.find((job) => job.provider === 'apple')
  t.match(appleJob.sealedGrant, /^[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/, "Apple's grant travels encrypted")

  t.equal(await prisma.auditEvent.count({ where: { userId, NOT: { ip: null } } }), 0, 'no row keeps an address')
  t.equal(await prisma.auditEvent.count({ where: { userId, NOT: { userAgent: null } } }), 0, 'nor a device')
  t.match(await prisma.auditEvent.findFirst({ where: { userId, action: 'user.deleted' } }), { actor: 'user', outcome: 'success' })

  const again = await deleteMe(first.accessToken)
  t.equal(again.statusCode, 401, 'a second delete with the old token is refused')
  const relogin = (await loginWithGoogle(gateway, { sub: 'deleted-1', name: 'Back Again' })).json()
  t.not(relogin.user.id, userId, 'logging in again makes a new account; nothing of the old one comes back')
})

t.test('deleting needs a recent login: auth_time older than 10 minutes, or none, is 401 reauthentication_required', async (t) => {
  const login = (await loginWithGoogle(gateway, { sub: 'stale-login', name: 'Stella' })).json()
  const { sub, sid } = jose.decodeJwt(login.accessToken) as { sub: string; sid: string }
  const now = Math.floor(Date.now() / 1000)
  const issue = (authTime?: number) => app.gateway.accessTokens.issue({ userId: sub, sessionId: sid, authTime }).then((issued) => issued.accessToken)
  for (const [what, token] of [
    ['a login 10 minutes and a second ago', await issue(now - 601)],
    ['a token from before auth_time', await issue(undefined)],
  ] as const) {
    const refused = await deleteMe(token)
    t.equal(refused.statusCode, 401, what)
    t.equal(refused.json().error, 'reauthentication_required', what)
  }
  t.equal(await prisma.user.count({ where: { publicId: sub } }), 1, 'nothing was deleted')
  t.equal((await refresh(login.refreshToken)).statusCode, 200, 'nor any session ended')
  t.equal((await deleteMe(await issue(now - 540))).statusCode, 204, 'a login 9 minutes ago is recent enough')
})

t.test('an operator deletes a user: DELETE /admin/users/{userId}', async (t) => {
  const clients = new ClientDirectory(prisma)
  const ops = await clients.create('deleter')
  await clients.grant(ops.clientId, gateway.config.tokenAudience, ['admin'])
  const token = (
    await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${ops.clientId}:${ops.clientSecret}`).toString('base64')}` },
      payload: 'grant_type=client_credentials',
    })
  ).json().access_token as string
  const { userId, first } = await userWithTwoSessions('admin-deleted')

  const asUser = await app.inject({ method: 'DELETE', url: `/admin/users/${userId}`, headers: bearer(first.accessToken) })
  t.equal(asUser.statusCode, 403, 'a user token is no admin credential')
  t.equal(await prisma.user.count({ where: { publicId: userId } }), 1)

  const unknown = await app.inject({ method: 'DELETE', url: '/admin/users/AAAAAAAAAAAAAAAAAAAAAA', headers: { authorization: `Bearer ${token}` } })
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().error, 'not_found')
  t.equal(await prisma.auditEvent.count({ where: { userId: 'AAAAAAAAAAAAAAAAAAAAAA' } }), 0, 'an unknown id records nothing')

  const deleted = await app.inject({ method: 'DELETE', url: `/admin/users/${userId}`, headers: { authorization: `Bearer ${token}` } })
  t.equal(deleted.statusCode, 204)
  t.equal(await prisma.user.count({ where: { publicId: userId } }), 0)
  t.equal((await refresh(first.refreshToken)).statusCode, 401)
  t.match(await prisma.auditEvent.findFirst({ where: { userId, action: 'user.deleted' } }), { actor: `client:${ops.clientId}` })

  const bad = await app.inject({ method: 'DELETE', url: '/admin/users/not%20an%20id!', headers: { authorization: `Bearer ${token}` } })
  t.equal(bad.statusCode, 400)
})

t.test('DELETE /auth/me without a bearer token is a 401 JSON answer', async (t) => {
  const response = await app.inject({ method: 'DELETE', url: '/auth/me' })
  t.equal(response.statusCode, 401)
  t.match(response.json(), { error: 'invalid_token', message: String })
})
