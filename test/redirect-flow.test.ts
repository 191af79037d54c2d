// The server-side redirect flow: the provider sends the browser back to the gateway, which
// keeps state, nonce and PKCE itself, puts the refresh token in its cookie, and returns the
// browser to the app. Nothing secret ever appears in a URL.

import t from 'tap'
import { APP_ORIGIN, startTestGateway, type TestGateway } from './support/gateway.js'
import type { EmulatedAccount } from '../emulators/google.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const RETURN_TO = `${APP_ORIGIN}/signed-in`

type Cookies = Record<string, string>
function cookiesOf(response: { cookies: { name: string; value: string }[] }): Cookies {
  return Object.fromEntries(response.cookies.filter((cookie) => cookie.value !== '').map((cookie) => [cookie.name, cookie.value]))
}

/** Starts the flow as a browser would and plays the user at Google; returns the callback request. */
async function throughGoogle(gateway: TestGateway, account: EmulatedAccount) {
  const start = await gateway.app.inject({ method: 'GET', url: `/auth/authorize/google?returnTo=${encodeURIComponent(RETURN_TO)}` })
  if (start.statusCode !== 302) throw new Error(`authorize: ${start.statusCode} ${start.body}`)
  const callback = await gateway.google.authorize(String(start.headers.location), account)
  return { start, callbackPath: `${callback.pathname}${callback.search}`, binding: cookiesOf(start) }
}

t.test('a returning user is signed in with the cookie and sent back to the app', async (t) => {
  await gateway.database.prisma.user.create({
    data: { publicId: 'AAAAAAAAAAAAAAAAAAAAAA', nickname: 'Rae', identities: { create: { provider: 'google', subject: 'redirect-1' } } },
  })
  const { start, callbackPath, binding } = await throughGoogle(gateway, { sub: 'redirect-1', name: 'Rae' })
  const authorization = new URL(String(start.headers.location))
  t.equal(authorization.origin, gateway.google.issuer, 'the browser goes to the provider')
  t.equal(authorization.searchParams.get('code_challenge_method'), 'S256')
  t.ok(authorization.searchParams.get('nonce'))
  t.match(String(start.headers['set-cookie']), /__Secure-login_binding=[^;]+; Max-Age=600; Path=\/auth\/callback; HttpOnly; Secure; SameSite=Lax/)

  const callback = await app.inject({ method: 'GET', url: callbackPath, cookies: binding })
  t.equal(callback.statusCode, 302, { body: callback.body })
  t.equal(callback.headers.location, RETURN_TO, 'back to the app, with nothing secret in the URL')
  const refreshCookie = cookiesOf(callback)['__Secure-refresh_token']
  t.match(refreshCookie, /^[A-Za-z0-9_-]{112}$/, 'the refresh token is in its cookie')

  const refreshed = await app.inject({ method: 'POST', url: '/auth/token', cookies: { '__Secure-refresh_token': refreshCookie }, headers: { origin: APP_ORIGIN } })
  t.equal(refreshed.statusCode, 200, 'the app can use the session at once')

  const replay = await app.inject({ method: 'GET', url: callbackPath, cookies: binding })
  t.equal(replay.statusCode, 400, 'a replayed callback is refused')
  t.equal(replay.json().error, 'invalid_state')
})

t.test('a callback that reaches another browser (login CSRF) is refused', async (t) => {
  const { callbackPath } = await throughGoogle(gateway, { sub: 'attacker', name: 'Mallory' })
  const users = await gateway.database.prisma.user.count()
  const victim = await app.inject({ method: 'GET', url: callbackPath })
  t.equal(victim.statusCode, 400)
  t.equal(victim.json().error, 'invalid_state')
  t.notOk(victim.headers['set-cookie']?.toString().includes('refresh_token='), 'no session was planted')
  t.equal(await gateway.database.prisma.user.count(), users)
})

t.test('a new user finishes signup through an HttpOnly cookie, never a URL', async (t) => {
  const { callbackPath, binding } = await throughGoogle(gateway, { sub: 'redirect-new', email: 'new@example.com' })
  const callback = await app.inject({ method: 'GET', url: callbackPath, cookies: binding })
  t.equal(callback.statusCode, 302)
  t.equal(callback.headers.location, `${RETURN_TO}?signup=required`)
  const ticketCookie = cookiesOf(callback)['__Secure-signup_ticket']
  t.ok(ticketCookie, 'the signup ticket is in a cookie')
  t.notOk(String(callback.headers.location).includes(ticketCookie), 'and not in the URL')
  t.match(String(callback.headers['set-cookie']), /__Secure-signup_ticket=[^;]+; Max-Age=600; Path=\/auth\/signup; HttpOnly; Secure; SameSite=Strict/)
  const cookies = { '__Secure-signup_ticket': ticketCookie }

  const pending = await app.inject({ method: 'GET', url: '/auth/signup', cookies })
  t.equal(pending.statusCode, 200)
  t.match(pending.json(), { provider: 'google', profile: { email: 'new@example.com' }, missing: ['nickname'] })

  const forged = await app.inject({ method: 'POST', url: '/auth/signup', cookies, payload: { nickname: 'Nell' } })
  t.equal(forged.statusCode, 403, 'a cross-site form cannot complete the signup')
  const signup = await app.inject({ method: 'POST', url: '/auth/signup', cookies, headers: { origin: APP_ORIGIN }, payload: { nickname: 'Nell' } })
  t.equal(signup.statusCode, 201, { body: signup.body })
  t.notOk('refreshToken' in signup.json())
  t.ok(cookiesOf(signup)['__Secure-refresh_token'], 'the new session is in the refresh cookie')
  t.match(String(signup.headers['set-cookie']), /__Secure-signup_ticket=;/, 'the ticket cookie is cleared')
})

t.test('a user who cancels at the provider is sent back with access_denied', async (t) => {
  const start = await app.inject({ method: 'GET', url: `/auth/authorize/google?returnTo=${encodeURIComponent(RETURN_TO)}` })
  const denied = await gateway.google.deny(String(start.headers.location))
  const callback = await app.inject({ method: 'GET', url: `${denied.pathname}${denied.search}`, cookies: cookiesOf(start) })
  t.equal(callback.statusCode, 302)
  t.equal(callback.headers.location, `${RETURN_TO}?error=access_denied`)
})

t.test('returnTo must be on an allowed web origin', async (t) => {
  const open = await app.inject({ method: 'GET', url: `/auth/authorize/google?returnTo=${encodeURIComponent('https://evil.example/steal')}` })
  t.equal(open.statusCode, 400, 'no open redirect')
  t.equal(open.json().error, 'invalid_request')
})

t.test('a state started for one provider is refused on another provider callback, with no provider call', async (t) => {
  const both = await startTestGateway({ database: 'pglite', listen: true })
  t.teardown(() => both.close())
  const returnTo = `${both.config.publicUrl}/demo`
  const start = await both.app.inject({ method: 'GET', url: `/auth/authorize/google?returnTo=${encodeURIComponent(returnTo)}` })
  const callback = await both.google.authorize(String(start.headers.location), { sub: 'mix-up', name: 'Mix' })
  const kakaoCalls = both.emulated!.kakao.requests.length

  const crossed = await both.app.inject({ method: 'GET', url: `/auth/callback/kakao${callback.search}`, cookies: cookiesOf(start) })
  t.equal(crossed.statusCode, 400)
  t.equal(crossed.json().error, 'invalid_state')
  t.equal(both.emulated!.kakao.requests.length, kakaoCalls, 'Kakao was never called')
  const original = await both.app.inject({ method: 'GET', url: `${callback.pathname}${callback.search}`, cookies: cookiesOf(start) })
  t.equal(original.statusCode, 400, 'and the state is spent: a mix-up attempt cannot be retried on the right provider')
})
