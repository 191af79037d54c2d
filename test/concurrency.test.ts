// Concurrency is normal, not theft: parallel refreshes share one successor, and parallel
// first logins or signups of one new person make exactly one account.

import t from 'tap'
import { loginWithGoogle, REDIRECT_URI, startTestGateway } from './support/gateway.js'
import { SessionStore } from '../src/sessions/session-store.js'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'

const gateway = await startTestGateway({ database: 'postgresql' })
t.teardown(() => gateway.close())
const { app } = gateway
const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

t.test('20 parallel refreshes with one token all get the same successor', async (t) => {
  const login = await loginWithGoogle(gateway, { sub: 'parallel-refresh', name: 'Pat' })
  const original = login.json().refreshToken as string

  const answers = await Promise.all(Array.from({ length: 20 }, () => refresh(original)))
  t.same(answers.map((answer) => answer.statusCode), Array(20).fill(200))
  const successors = new Set(answers.map((answer) => answer.json().refreshToken))
  t.equal(successors.size, 1, 'every answer carries the same successor refresh token')
  const [successor] = successors as Set<string>
  t.not(successor, original)
  t.equal(new Set(answers.map((answer) => answer.json().accessToken)).size, 20, 'each answer has a fresh access token')

  const { userId, sessionId } = parseRefreshToken(original)!
  t.equal(await new SessionStore(gateway.redis).generation(userId, sessionId), 1, 'the session rotated exactly once: one live refresh token')

  const next = await refresh(successor)
  t.equal(next.statusCode, 200, 'the shared successor is the live token')
  t.equal((await refresh(original)).statusCode, 401, 'the original, now two generations back, is reuse')
  t.equal((await refresh(next.json().refreshToken)).statusCode, 401, 'and reuse ended the whole session')
})

t.test('parallel first logins of one new subject create exactly one user', async (t) => {
  const account = { sub: 'parallel-first-login', name: 'Quinn', email: 'quinn@example.com', email_verified: true }
  // Two complete authorizations of the same person (two tabs), posted back at the same time.
  const starts = await Promise.all(
    [1, 2].map(() => app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })),
  )
  const posts = await Promise.all(
    starts.map(async (start) => {
      const { authorizationUrl, state } = start.json()
      return { code: await gateway.codeFor(authorizationUrl, account), state }
    }),
  )
  const logins = await Promise.all(
    posts.map(({ code, state }) =>
      app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, state, redirectUri: REDIRECT_URI } }),
    ),
  )
  t.same(logins.map((login) => login.statusCode), [200, 200], 'both logins succeed')
  const bodies = logins.map((login) => login.json())
  t.equal(bodies[0].user.id, bodies[1].user.id, 'both tabs are signed in as the same user')
  t.same(bodies.map((body) => body.isNewUser).sort(), [false, true], 'exactly one of them created the account')
  const identities = await gateway.database.prisma.identity.findMany({ where: { subject: account.sub } })
  t.equal(identities.length, 1, 'one identity')
  t.equal(await gateway.database.prisma.user.count({ where: { publicId: bodies[0].user.id } }), 1, 'one user')
})

t.test('parallel signups of one new subject with two tickets: one account, one conflict', async (t) => {
  const account = { sub: 'parallel-signup' }
  const tickets = await Promise.all([1, 2].map(async () => (await loginWithGoogle(gateway, account)).json().signupToken as string))
  const signups = await Promise.all(
    tickets.map((signupToken) => app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Robin' } })),
  )
  t.same(signups.map((signup) => signup.statusCode).sort(), [201, 409])
  t.equal(signups.find((signup) => signup.statusCode === 409)!.json().error, 'identity_already_linked')
  t.equal(await gateway.database.prisma.identity.count({ where: { subject: account.sub } }), 1)
})

t.test('one signup ticket used 20 times in parallel creates one account', async (t) => {
  const account = { sub: 'ticket-race' }
  const { signupToken } = (await loginWithGoogle(gateway, account)).json()
  const usersBefore = await gateway.database.prisma.user.count()
  const signups = await Promise.all(
    Array.from({ length: 20 }, () => app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: 'Sam' } })),
  )
  const statuses = signups.map((signup) => signup.statusCode)
  t.equal(statuses.filter((status) => status === 201).length, 1, 'exactly one 201')
  t.equal(statuses.filter((status) => status === 401).length, 19, 'the others: the ticket is used')
  t.equal(await gateway.database.prisma.user.count(), usersBefore + 1, 'one user created')
})
