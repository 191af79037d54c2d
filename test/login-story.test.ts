// The whole story a product team relies on, once on PostgreSQL and once on the embedded
// PGlite: first login → signup → tokens → /auth/me → refresh → reuse revokes → login
// again → logout → the logged-out token is refused.

import t from 'tap'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'

for (const database of ['postgresql', 'pglite'] as const) {
  t.test(`the login story on ${database}`, async (t) => {
    const gateway = await startTestGateway({ database })
    t.teardown(() => gateway.close())
    const { app } = gateway
    const account = { sub: `google-${database}-1`, email: 'Ann@Example.com', email_verified: true }

    // First login of an unknown identity without a name: a signup ticket, and no user yet.
    const first = await loginWithGoogle(gateway, account)
    t.equal(first.statusCode, 200, { body: first.body })
    const ticket = first.json()
    t.equal(ticket.status, 'signup_required')
    t.same(ticket.missing, ['nickname'])
    t.equal(ticket.profile.email, 'ann@example.com', 'a verified email is offered, normalised')
    t.match(ticket.signupToken, /^[A-Za-z0-9_-]{43}$/)
    t.equal(await gateway.database.prisma.user.count(), 0, 'no user row exists before signup')

    const signup = await app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: ticket.signupToken, nickname: 'Ann' } })
    t.equal(signup.statusCode, 201, { body: signup.body })
    const session = signup.json()
    t.equal(session.status, 'authenticated')
    t.equal(session.isNewUser, true)
    t.equal(session.tokenType, 'Bearer')
    t.match(session.refreshToken, /^[A-Za-z0-9_-]{112}$/, 'a native client gets the refresh token in the body')
    t.equal(session.user.nickname, 'Ann')
    t.not(session.user.id, account.sub, 'the user id is not the provider subject')

    const replayedTicket = await app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: ticket.signupToken, nickname: 'Ann' } })
    t.equal(replayedTicket.statusCode, 401)
    t.equal(replayedTicket.json().error, 'invalid_signup_token')

    const me = await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${session.accessToken}` } })
    t.equal(me.statusCode, 200, { body: me.body })
    t.match(me.json(), { id: session.user.id, nickname: 'Ann', email: 'ann@example.com', identities: [{ provider: 'google' }] })

    // Rotation: every refresh hands out a new refresh token and retires the old one.
    const refresh = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
    const second = await refresh(session.refreshToken)
    t.equal(second.statusCode, 200, { body: second.body })
    const third = await refresh(second.json().refreshToken)
    t.equal(third.statusCode, 200, { body: third.body })
    t.not(second.json().refreshToken, session.refreshToken)

    // The first token, two generations back, is theft: the whole session ends.
    const reuse = await refresh(session.refreshToken)
    t.equal(reuse.statusCode, 401)
    t.equal(reuse.json().error, 'invalid_grant')
    const newest = await refresh(third.json().refreshToken)
    t.equal(newest.statusCode, 401, 'the newest token of the revoked session is refused too')
    const meAfterReuse = await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${third.json().accessToken}` } })
    t.equal(meAfterReuse.statusCode, 401, 'access tokens of the revoked session are refused by /auth/me')

    // Logging in again finds the same account by (provider, subject).
    const again = await loginWithGoogle(gateway, account)
    t.equal(again.statusCode, 200, { body: again.body })
    t.equal(again.json().status, 'authenticated')
    t.equal(again.json().isNewUser, false)
    t.equal(again.json().user.id, session.user.id)

    const logout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: again.json().refreshToken } })
    t.equal(logout.statusCode, 204)
    const afterLogout = await refresh(again.json().refreshToken)
    t.equal(afterLogout.statusCode, 401)
    t.equal(afterLogout.json().error, 'invalid_grant')
    t.equal(await gateway.database.prisma.identity.count(), 1, 'one identity, linked once')
  })
}
