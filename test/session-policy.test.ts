// SESSION_POLICY: `multi` keeps one session per device; `single` ends the others on login.

import t from 'tap'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'

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
