// SESSION_POLICY: `multi` keeps one session per device; `single` ends the others on login.

import t from 'tap'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { sessionKeys } from '../verifier/session-keys.js'
import { loginWithGoogle, REDIRECT_URI, startTestGateway } from './support/gateway.js'

for (const [policy, othersSurvive] of [['multi', true], ['single', false]] as const) {
  t.test(`SESSION_POLICY=${policy}`, async (t) => {
    const gateway = await startTestGateway({ database: 'pglite', env: { SESSION_POLICY: policy } })
    t.teardown(() => gateway.close())
    const account = { sub: `policy-${policy}`, name: 'Poly' }
    const phone = (await loginWithGoogle(gateway, account)).json()
    const laptop = (await loginWithGoogle(gateway, account)).json()
    t.equal(phone.user.id, laptop.user.id)

    const phoneRefresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: phone.refreshToken } })
    t.equal(phoneRefresh.statusCode, othersSurvive ? 200 : 401, othersSurvive ? 'the first device stays signed in' : 'the first device was signed out')
    const phoneMe = await gateway.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${phone.accessToken}` } })
    t.equal(phoneMe.statusCode, othersSurvive ? 200 : 401)
    const laptopRefresh = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: laptop.refreshToken } })
    t.equal(laptopRefresh.statusCode, 200, 'the newest session always works')
  })
}

t.test('each lifetime has its own setting: a started login lives LOGIN_TRANSACTION_TTL, a signup ticket SIGNUP_TICKET_TTL, cached scopes SCOPE_CACHE_TTL', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite', env: { LOGIN_TRANSACTION_TTL: '120', SIGNUP_TICKET_TTL: '300', SCOPE_CACHE_TTL: '3600', REFRESH_TOKEN_TTL: '7200' } })
  t.teardown(() => gateway.close())
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  t.equal(start.json().expiresIn, 120, 'the login transaction')
  const stateKeys = await gateway.redis.keys('gw:login:*')
  t.ok(stateKeys.length === 1 && (await gateway.redis.ttl(stateKeys[0]!)) <= 120, 'stored for that long')
  const signup = (await loginWithGoogle(gateway, { sub: 'ttl-new' })).json()
  t.equal(signup.expiresIn, 300, 'the signup ticket')
  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'ttl-user', name: 'Tia' })).json()
  const { userId } = parseRefreshToken(refreshToken)!
  const scopeTtl = await gateway.redis.ttl(sessionKeys.scopes(userId))
  t.ok(scopeTtl > 3000 && scopeTtl <= 3600, `the scope cache (${scopeTtl} s), not the refresh token's 7200 s`)
})
