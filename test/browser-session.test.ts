// Web clients: the refresh token lives only in an HttpOnly, Secure, SameSite=Strict
// cookie, and a cookie is honoured only with an allowed Origin (CSRF).

import type { FastifyRequest } from 'fastify'
import t from 'tap'
import { InvalidRequest } from '../src/common/errors.js'
import { BrowserPolicy } from '../src/http/browser.js'
import { APP_ORIGIN, loginWithGoogle, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const browser = { origin: APP_ORIGIN }

function refreshCookieOf(response: { cookies: { name: string; value: string }[] }) {
  return response.cookies.find((cookie) => cookie.name === '__Secure-refresh_token')
}

t.test('a browser login sets the refresh cookie and keeps the token out of the body', async (t) => {
  const login = await loginWithGoogle(gateway, { sub: 'web-1', name: 'Wen' }, browser)
  t.equal(login.statusCode, 200)
  t.notOk('refreshToken' in login.json(), 'no refresh token in the body of a browser response')
  t.ok(login.json().accessToken)
  t.equal(login.headers['access-control-allow-origin'], APP_ORIGIN)
  t.equal(login.headers['access-control-allow-credentials'], 'true')
  const setCookie = String(login.headers['set-cookie'])
  t.match(setCookie, /^__Secure-refresh_token=[A-Za-z0-9_-]{112};/)
  for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/auth', 'Max-Age=1209600']) {
    t.ok(setCookie.includes(attribute), `cookie has ${attribute}`)
  }
  t.notMatch(setCookie, /Domain=/i, 'no Domain: the cookie stays on the gateway host')
})

t.test('a web app on an allowed origin may read the bearer challenge and Retry-After', async (t) => {
  const refused = await app.inject({ method: 'GET', url: '/auth/me', headers: { ...browser, authorization: 'Bearer not-a-token' } })
  t.equal(refused.statusCode, 401)
  t.match(refused.headers['www-authenticate'], /invalid_token/)
  const exposed = String(refused.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/)
  t.ok(exposed.includes('www-authenticate') && exposed.includes('retry-after'), 'both headers are exposed to the page')
  const foreign = await app.inject({ method: 'GET', url: '/auth/me', headers: { origin: 'https://evil.example', authorization: 'Bearer not-a-token' } })
  t.notOk(foreign.headers['access-control-expose-headers'], 'nothing is exposed to a foreign origin')
})

t.test('refresh by cookie rotates the cookie; without or with a foreign Origin it is refused', async (t) => {
  const login = await loginWithGoogle(gateway, { sub: 'web-2', name: 'Wes' }, browser)
  const cookie = refreshCookieOf(login)!
  const cookies = { [cookie.name]: cookie.value }

  const csrf = await app.inject({ method: 'POST', url: '/auth/token', cookies })
  t.equal(csrf.statusCode, 403, 'a cookie without Origin (a cross-site form) is refused')
  t.equal(csrf.json().error, 'origin_not_allowed')
  const foreign = await app.inject({ method: 'POST', url: '/auth/token', cookies, headers: { origin: 'https://evil.example' } })
  t.equal(foreign.statusCode, 403)
  t.notOk(foreign.headers['access-control-allow-origin'], 'CORS never reflects a foreign origin')

  const refreshed = await app.inject({ method: 'POST', url: '/auth/token', cookies, headers: browser })
  t.equal(refreshed.statusCode, 200, 'the refused attempts did not spend the token')
  t.notOk('refreshToken' in refreshed.json())
  const rotated = refreshCookieOf(refreshed)!
  t.not(rotated.value, cookie.value, 'the cookie carries the successor')

  const asBody = await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: rotated.value } })
  t.equal(asBody.statusCode, 401, 'a web cookie token replayed as a mobile body token is refused')

  const logout = await app.inject({ method: 'POST', url: '/auth/logout', cookies: { [rotated.name]: rotated.value }, headers: browser })
  t.equal(logout.statusCode, 204)
  t.match(String(logout.headers['set-cookie']), /__Secure-refresh_token=;.*Expires=Thu, 01 Jan 1970/, 'logout expires the cookie')
  const after = await app.inject({ method: 'POST', url: '/auth/token', cookies: { [rotated.name]: rotated.value }, headers: browser })
  t.equal(after.statusCode, 401)
})

t.test('a mobile body token presented from a browser is refused', async (t) => {
  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'mobile-1', name: 'Mo' })).json()
  const fromBrowser = await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken }, headers: browser })
  t.equal(fromBrowser.statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })).statusCode, 200, 'it still works from the app')
})

t.test('logout is idempotent and ends the session of a bearer access token too', async (t) => {
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout' })).statusCode, 204, 'no token: 204')
  const login = (await loginWithGoogle(gateway, { sub: 'bearer-logout', name: 'Bea' })).json()
  const authorization = `Bearer ${login.accessToken}`
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: { authorization } })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization } })).statusCode, 401, 'the access token is refused at once')
  t.equal((await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: login.refreshToken } })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: login.refreshToken } })).statusCode, 204, 'twice: still 204')
})

t.test('a browser logout sends Clear-Site-Data: "cookies"; an app logout does not', async (t) => {
  const login = await loginWithGoogle(gateway, { sub: 'web-clear', name: 'Clea' }, browser)
  const cookie = refreshCookieOf(login)!
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', cookies: { [cookie.name]: cookie.value }, headers: browser })
  t.equal(logout.statusCode, 204)
  t.equal(logout.headers['clear-site-data'], '"cookies"', 'the browser is told to drop the site\'s cookies')
  t.equal(logout.headers['cache-control'], 'no-store')
  t.match(String(logout.headers['set-cookie']), /__Secure-refresh_token=;/, 'and the refresh cookie is expired as before')

  const withBearer = await loginWithGoogle(gateway, { sub: 'web-clear-bearer', name: 'Bee' }, browser)
  const bearer = await app.inject({ method: 'POST', url: '/auth/logout', headers: { ...browser, authorization: `Bearer ${withBearer.json().accessToken}` } })
  t.equal(bearer.statusCode, 204)
  t.equal(bearer.headers['clear-site-data'], '"cookies"', 'a browser logging out by its access token gets it too')

  const appLogin = (await loginWithGoogle(gateway, { sub: 'app-clear', name: 'Appy' })).json()
  const fromApp = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: appLogin.refreshToken } })
  t.equal(fromApp.statusCode, 204)
  t.notOk(fromApp.headers['clear-site-data'], 'an app (no Origin) gets no Clear-Site-Data')
  t.equal(fromApp.headers['cache-control'], 'no-store')

  const foreign = await app.inject({ method: 'POST', url: '/auth/logout', headers: { origin: 'https://evil.example' } })
  t.equal(foreign.statusCode, 403)
  t.notOk(foreign.headers['clear-site-data'], 'another site cannot make the browser wipe its cookies')
})

t.test('the development cookie name (refresh_token, http://localhost) refuses two cookies just the same', async (t) => {
  const policy = new BrowserPolicy({ webOrigins: [APP_ORIGIN], publicUrl: 'http://localhost:3000', production: false })
  t.equal(policy.cookie.name, 'refresh_token')
  const request = (cookie: string, cookies: Record<string, string>) => ({ headers: { origin: APP_ORIGIN, cookie }, cookies }) as unknown as FastifyRequest
  t.throws(() => policy.refreshTokenOf(request('refresh_token=a; refresh_token=b', { refresh_token: 'a' }), undefined), InvalidRequest, 'two refresh_token cookies')
  t.throws(() => policy.refreshTokenOf(request(' refresh_token=a;refresh_token =b', { refresh_token: 'a' }), undefined), InvalidRequest, 'spacing does not hide the second')
  t.same(policy.refreshTokenOf(request('refresh_token=a; __Secure-refresh_token=b', { refresh_token: 'a', '__Secure-refresh_token': 'b' }), undefined), { token: 'a', channel: 'cookie' }, 'another name is not a second one')
  t.same(policy.refreshTokenOf(request('refresh_token=a', { refresh_token: 'a' }), undefined), { token: 'a', channel: 'cookie' }, 'the control: one cookie is read')
})
