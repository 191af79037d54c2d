// The client in a real browser (Debian's Chromium, driven by playwright-core) on the web
// channel. An app page on its own origin (in the gateway's WEB_ORIGINS) bundles the client
// with esbuild; the gateway and the emulated Google run on loopback. A new user logs in
// through the redirect flow, signs up, calls APIs, survives reloads on the HttpOnly refresh
// cookie alone, and logs out; a session ended elsewhere signs the page out; 50 parallel calls
// across an access-token expiry make one refresh; a Redis outage leaves the page signed in.

import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { countedGateway, sleep } from './support.js'

const CHROMIUM = '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`)

// The client as an app bundles it.
const bundle = await build({
  entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  write: false,
})
// The app: every page loads the client, puts it on `window.client` and records its session
// events in `window.events`. The page does nothing else: the test drives it.
const appPage = `<!doctype html><meta charset="utf-8"><title>app</title>
<script type="module">
import { createGatewayClient } from '/client.js'
window.events = []
window.client = createGatewayClient({ baseUrl: document.documentElement.dataset.gateway, platform: 'web', retry: { attempts: 30, baseDelayMs: 100, maxDelayMs: 400 } })
window.client.subscribe((event) => window.events.push(event))
window.ready = true
</script>`
let gatewayUrl = ''
const app = createServer((request, response) => {
  if (request.url === '/client.js') return void response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle.outputFiles[0]!.text)
  if (request.url === '/favicon.ico') return void response.writeHead(404).end()
  response.writeHead(200, { 'content-type': 'text/html' }).end(appPage.replace('<title>', `<html data-gateway="${gatewayUrl}"><title>`))
})
await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
t.teardown(() => app.close())
// localhost like the gateway's PUBLIC_URL: another origin on the same site, so the
// SameSite=Strict refresh cookie goes along.
const appOrigin = `http://localhost:${(app.address() as AddressInfo).port}`

const counted = await countedGateway({ WEB_ORIGINS: appOrigin })
const { gateway, refreshes } = counted
t.teardown(() => gateway.close())
gatewayUrl = gateway.config.publicUrl

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
t.teardown(() => browser.close())

/** Runs `body` in the page, with `client` in scope; answers its result. */
const inApp = <T>(page: Page, body: string): Promise<T> =>
  page.evaluate(`(async () => { const client = window.client; ${body} })()`) as Promise<T>

/** Loads `path` of the app and waits for its client. */
async function open(page: Page, path = '/') {
  await page.goto(`${appOrigin}${path}`)
  await page.waitForFunction('window.ready === true')
}

/**
 * A new browser logs in at the emulated Google through the gateway's redirect flow; answers
 * the page, back at /back. The browser is closed at the end of `owner` (default `t`).
 */
async function loginThroughGoogle(t: Test, account: { sub: string; name: string; email?: string }, owner: Test = t) {
  const context = await browser.newContext()
  owner.teardown(() => context.close())
  const page = await context.newPage()
  await open(page)
  await page.goto(await inApp<string>(page, `return client.authorizeUrl('google', { returnTo: ${JSON.stringify(`${appOrigin}/back`)} })`))
  await page.waitForURL((url) => url.origin === gateway.google.issuer)
  await page.fill('input[name=sub]', account.sub)
  await page.fill('input[name=email]', account.email ?? '')
  await page.fill('input[name=name]', account.name)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL((url) => url.href.startsWith(`${appOrigin}/back`))
  await page.waitForFunction('window.ready === true')
  t.notMatch(page.url(), /code=|state=|token/i, 'no code, state or token in the address bar')
  return page
}

// Logged in first, so that its access token is near its end when the last test runs.
let expiring: { page: Page; loggedInAt: number } | undefined
const top = t

t.test('a returning user is signed in by the redirect flow alone', async (t) => {
  const page = await loginThroughGoogle(t, { sub: 'web-client-expiring', name: 'Web Two' }, top)
  const loggedInAt = Date.now()
  t.same(await inApp(page, 'return client.completeRedirect(location.href)'), { status: 'authenticated' }, 'a profile with a name needs no signup')
  t.same(await page.evaluate('window.events'), [{ state: 'signed_in' }])
  expiring = { page, loggedInAt }
})

t.test('a new user: redirect login, signup, API calls, reloads on the cookie alone, logout', async (t) => {
  const page = await loginThroughGoogle(t, { sub: 'web-client-1', name: '', email: 'web1@example.com' })
  t.match(page.url(), /\?signup=required$/)
  const back = await inApp<{ status: string; missing: string[]; profile: object }>(page, 'return client.completeRedirect(location.href)')
  t.match(back, { status: 'signup_required', provider: 'google', missing: ['nickname'], profile: { email: 'web1@example.com' } }, 'the signup form learns what is missing')
  t.equal(await inApp(page, 'return client.state'), 'unknown', 'not signed in before signup')
  const signedUp = await inApp<{ status: string; user: { nickname: string } }>(page, "return client.finishSignup({ nickname: 'Web One' })")
  t.match(signedUp, { status: 'authenticated', isNewUser: true, user: { nickname: 'Web One', email: 'web1@example.com' } })
  t.equal(await inApp<string>(page, 'return (await client.me()).nickname'), 'Web One', 'the gateway API answers with the access token')
  t.same(await inApp(page, 'return (await client.identities()).map((identity) => identity.provider)'), ['google'])
  t.same((await inApp<string[]>(page, 'return client.providers()')).sort(), ['apple', 'google', 'kakao', 'naver'], 'the login buttons to show')
  const left = await inApp<number>(page, 'return client.accessTokenExpiresAt.getTime() - Date.now()')
  t.ok(left > 20_000 && left <= 30_000, `the access token's end is known (${left} ms)`)
  t.same(await page.evaluate('window.events'), [{ state: 'signed_in' }])
  t.equal(await page.evaluate('document.cookie'), '', 'no cookie is readable by the page')
  t.equal(await page.evaluate('localStorage.length + sessionStorage.length'), 0, 'nothing kept in web storage')

  // A reload starts from nothing but the HttpOnly cookie.
  for (const reload of [1, 2]) {
    await open(page)
    t.equal(await inApp(page, 'return client.restore()'), 'signed_in', `reload ${reload}: the refresh cookie brings the session back`)
    t.equal(await inApp<string>(page, 'return (await client.me()).nickname'), 'Web One')
  }
  await inApp(page, 'await client.logout()')
  t.same(await page.evaluate('window.events'), [{ state: 'signed_in' }, { state: 'signed_out', reason: 'logout' }])
  await open(page)
  t.equal(await inApp(page, 'return client.restore()'), 'signed_out', 'after logout a reload is signed out')
  t.same(await page.evaluate('window.events'), [{ state: 'signed_out', reason: 'no_session' }], 'with no session to end')
})

t.test('a session ended elsewhere: the next API call finds it out and the page signs out', async (t) => {
  const page = await loginThroughGoogle(t, { sub: 'web-client-3', name: 'Web Three' })
  await inApp(page, 'return client.completeRedirect(location.href)')
  const { id } = await inApp<{ id: string }>(page, 'return client.me()')
  await gateway.services.sessions.endAll(id, 'test', {})
  const before = refreshes.length
  // The gateway's 401 invalid_token (WWW-Authenticate is hidden from a cross-origin page:
  // the client reads the error code), then a refresh the gateway refuses.
  const failure = await inApp<{ status: number; error: string }>(page, 'try { await client.me(); return null } catch (error) { return { status: error.status, error: error.error } }')
  t.same(failure, { status: 401, error: 'invalid_grant' }, 'the call fails with the refused refresh')
  t.same(refreshes.slice(before), [401], 'after one refresh')
  t.same(await page.evaluate('window.events'), [{ state: 'signed_in' }, { state: 'signed_out', reason: 'session_ended' }])
})

t.test('link a provider through its pages, and unlink it', async (t) => {
  const page = await loginThroughGoogle(t, { sub: 'web-client-5', name: 'Web Five' })
  await inApp(page, 'return client.completeRedirect(location.href)')
  const { authorizationUrl } = await inApp<{ authorizationUrl: string }>(page, `return client.startLink('kakao', { returnTo: ${JSON.stringify(`${appOrigin}/settings`)} })`)
  await page.goto(authorizationUrl)
  await page.waitForURL((url) => url.origin === new URL(gateway.emulated!.kakao.authUrl).origin)
  await page.fill('input[name=id]', '9200005')
  await page.fill('input[name=nickname]', 'Kakao Five')
  await page.getByRole('button', { name: 'Agree and continue' }).click()
  await page.waitForURL((url) => url.href.startsWith(`${appOrigin}/settings`))
  await page.waitForFunction('window.ready === true')
  t.same(await inApp(page, 'return client.completeRedirect(location.href)'), { status: 'linked', provider: 'kakao' })
  t.equal(await inApp(page, 'return client.state'), 'signed_in', 'the reloaded page is signed in again')
  const identities = await inApp<{ id: string; provider: string }[]>(page, 'return client.identities()')
  t.same(identities.map((identity) => identity.provider).sort(), ['google', 'kakao'])
  await inApp(page, `await client.unlink(${JSON.stringify(identities.find((identity) => identity.provider === 'kakao')!.id)})`)
  t.same(await inApp(page, 'return (await client.identities()).map((identity) => identity.provider)'), ['google'])
  const last = await inApp(page, `try { await client.unlink(${JSON.stringify(identities.find((identity) => identity.provider === 'google')!.id)}) } catch (error) { return [error.name, error.status, error.error] }`)
  t.same(last, ['GatewayError', 409, 'last_identity'], 'the last identity stays, with a typed error')
})

t.test('a Redis outage: refreshes get 503s, are retried with backoff, and the page stays signed in', async (t) => {
  const page = await loginThroughGoogle(t, { sub: 'web-client-4', name: 'Web Four' })
  await inApp(page, 'return client.completeRedirect(location.href)')
  t.teardown(() => counted.redisBack())
  let restarted: Promise<void> | undefined
  let downFor = 0
  counted.onRefresh = (status) => {
    // Redis stays down through three 503s, then comes back.
    if (status === 503 && ++downFor === 3) restarted ??= counted.redisBack()
  }
  t.teardown(() => void (counted.onRefresh = undefined))
  await counted.redisDown()
  const before = refreshes.length
  t.match(await inApp<string>(page, 'return client.refresh()'), /^ey/, 'the refresh succeeds once Redis is back')
  await restarted
  const during = refreshes.slice(before)
  t.same(during.slice(0, 3), [503, 503, 503], 'retried through the 503s')
  t.equal(during.at(-1), 200, `and then answered (${during.join(' ')})`)
  t.equal(await inApp<string>(page, 'return (await client.me()).nickname'), 'Web Four')
  t.same(await page.evaluate('window.events'), [{ state: 'signed_in' }], 'never signed out by the outage')
})

t.test('50 parallel API calls across an access-token expiry cause exactly one refresh', async (t) => {
  const { page, loggedInAt } = expiring!
  // The access token lives 30 s; the client renews it in its last 5.
  await sleep(Math.max(0, loggedInAt + 25_500 - Date.now()))
  const before = refreshes.length
  const statuses = await inApp<number[]>(page, `return Promise.all(Array.from({ length: 50 }, () => client.fetch(${JSON.stringify(`${gatewayUrl}/auth/me`)}).then((answer) => answer.status)))`)
  t.same([...new Set(statuses)], [200], 'all fifty answered')
  t.same(refreshes.slice(before), [200], 'one refresh for all fifty')
  t.same(await page.evaluate('window.events'), [{ state: 'signed_in' }])
})
