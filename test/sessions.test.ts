// A user's sessions: listed with their devices, ended one by one or all at once, with
// effect at once on refresh tokens and access tokens, atomically against racing refreshes,
// and every change written to the audit trail without a token value in it.

import t from 'tap'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })
const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const me = (accessToken: string) => app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })

t.test('a user sees each device, ends one, then all', async (t) => {
  const account = { sub: 'two-devices', name: 'Dev' }
  const phone = (await loginWithGoogle(gateway, account, { 'user-agent': 'Phone/1.0' })).json()
  const laptop = (await loginWithGoogle(gateway, account, { 'user-agent': 'Laptop/2.0' })).json()

  const listed = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(phone.accessToken) })
  t.equal(listed.statusCode, 200)
  const sessions = listed.json().sessions as { id: string; client: string; current: boolean; createdAt: string; lastUsedAt: string }[]
  t.same(sessions.map((session) => [session.client, session.current]), [['Phone/1.0', true], ['Laptop/2.0', false]])
  t.ok(sessions.every((session) => !Number.isNaN(Date.parse(session.createdAt)) && !Number.isNaN(Date.parse(session.lastUsedAt))))

  const laptopId = sessions[1]!.id
  const ended = await app.inject({ method: 'DELETE', url: `/auth/sessions/${laptopId}`, headers: bearer(phone.accessToken) })
  t.equal(ended.statusCode, 204)
  t.equal((await refresh(laptop.refreshToken)).statusCode, 401, "the ended session's refresh token fails")
  t.equal((await me(laptop.accessToken)).statusCode, 401, 'and its access token is refused at once')
  t.equal((await me(phone.accessToken)).statusCode, 200, 'the other session goes on')

  const someoneElse = (await loginWithGoogle(gateway, { sub: 'someone-else', name: 'Sam' })).json()
  const foreign = await app.inject({ method: 'DELETE', url: `/auth/sessions/${sessions[0]!.id}`, headers: bearer(someoneElse.accessToken) })
  t.equal(foreign.statusCode, 204, 'ending a session id that is not yours answers like any other')
  t.equal((await me(phone.accessToken)).statusCode, 200, 'but ends nothing')

  const all = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(phone.accessToken) })
  t.equal(all.statusCode, 204)
  t.equal((await me(phone.accessToken)).statusCode, 401)
  t.equal((await refresh(phone.refreshToken)).statusCode, 401)
  const again = await loginWithGoogle(gateway, account)
  t.equal(again.statusCode, 200, 'a fresh login still works')
})

t.test('logout-all racing refreshes: rotations land on both sides of it, and none survives it', async (t) => {
  const account = { sub: 'racer', name: 'Race' }
  const logins = await Promise.all(Array.from({ length: 5 }, () => loginWithGoogle(gateway, account)))
  const first = logins[0]!.json()
  const issued = logins.map((login) => login.json().refreshToken as string)
  // Waves of ten refreshes, each wave using the tokens the last one returned, from the moment
  // the logout is sent until it has answered, then one wave more.
  let settled = false
  const logout = app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(first.accessToken) }).finally(() => (settled = true))
  let current = [...issued]
  let won = 0
  let refused = 0
  for (let last = false; !last; ) {
    last = settled
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => refresh(current[i % current.length]!)))
    const successes = answers.filter((answer) => answer.statusCode === 200).map((answer) => answer.json().refreshToken as string)
    won += successes.length
    refused += answers.filter((answer) => answer.statusCode === 401).length
    issued.push(...successes)
    if (successes.length > 0) current = [...new Set(successes)]
  }
  t.equal((await logout).statusCode, 204)
  t.ok(won > 0, `refreshes won while the logout was on its way (${won})`)
  t.ok(refused > 0, `and refreshes after it were refused (${refused})`)
  const afterwards = await Promise.all([...new Set(issued)].map((token) => refresh(token)))
  t.same(afterwards.map((answer) => answer.statusCode).filter((status) => status !== 401), [], 'every refresh token ever issued is dead')
})

t.test('the audit trail records who ended what, from where, and never a token', async (t) => {
  const login = (await loginWithGoogle(gateway, { sub: 'audited', name: 'Aud' }, { 'user-agent': 'AuditPhone/3' })).json()
  const rotated = (await refresh(login.refreshToken)).json()
  await refresh((await refresh(rotated.refreshToken)).json().refreshToken)
  t.equal((await refresh(login.refreshToken)).statusCode, 401, 'reuse of an old token')
  const again = (await loginWithGoogle(gateway, { sub: 'audited', name: 'Aud' })).json()
  await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: again.refreshToken } })

  const events = await gateway.database.prisma.auditEvent.findMany({ where: { userId: login.user.id }, orderBy: { id: 'asc' } })
  t.same(
    events.map((event) => [event.action, event.actor, event.outcome]),
    [
      ['session.started', 'user', 'success'],
      ['session.reuse_detected', 'system', 'denied'],
      ['session.started', 'user', 'success'],
      ['session.ended', 'user', 'success'],
    ],
  )
  t.equal(events[0]!.userAgent, 'AuditPhone/3')
  t.equal(events[0]!.ip, '127.0.0.1')
  t.ok(events.every((event) => event.sessionId && event.at instanceof Date))
  const everything = JSON.stringify(await gateway.database.prisma.auditEvent.findMany(), (_key, value) => (typeof value === 'bigint' ? String(value) : value))
  for (const secret of [login.refreshToken, login.accessToken, rotated.refreshToken, again.refreshToken]) {
    t.notOk(everything.includes(secret), 'no token value in the audit trail')
  }
})
