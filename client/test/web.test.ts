// The client in a real browser (Debian's Chromium, driven by playwright-core) on the web
// channel: an app page on its own origin logs in through the gateway's redirect flow at the
// emulated Google, signs up, calls APIs, survives a reload on the refresh cookie alone,
// makes 50 parallel calls across an access-token expiry with exactly one refresh, rides out
// a Redis outage signed in, and logs out.

import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { startTestGateway } from '../../test/support/gateway.js'

const CHROMIUM = '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`)

// The client as an app bundles it, served with a page from the app's own origin.
const bundle = await build({
  entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
  bundle: true,
  format: 'esm',
  write: false,
  target: 'es2022',
})
const app = createServer((request, response) => {
  if (request.url === '/client.js') return void response.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle.outputFiles[0]!.text)
  response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title><h1>app</h1>')
})
await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
t.teardown(() => app.close())
// localhost like the gateway's PUBLIC_URL: another origin, the same site.
const appOrigin = `http://localhost:${(app.address() as AddressInfo).port}`

const gateway = await startTestGateway({ database: 'pglite', listen: true, env: { ACCESS_TOKEN_TTL: '30', WEB_ORIGINS: appOrigin } })
t.teardown(() => gateway.close())
const gatewayUrl = gateway.config.publicUrl
let refreshes = 0
gateway.app.server.on('request', (request) => {
  if (request.method === 'POST' && request.url === '/auth/token') refreshes++
})

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] })
t.teardown(() => browser.close())

/** Loads the app page with the client on `window.client`, its session changes in `window.changes`. */
async function openApp(page: Page, path = '/') {
  await page.goto(`${appOrigin}${path}`)
  await page.evaluate(async ({ gatewayUrl }) => {
    const { createGatewayClient } = await import('/client.js' as string)
    const changes: string[] = []
    Object.assign(globalThis, { changes, client: createGatewayClient({ baseUrl: gatewayUrl, platform: 'web', onChange: (state: string) => changes.push(state), retry: { attempts: 8, baseDelayMs: 100, maxDelayMs: 800 } }) })
  }, { gatewayUrl })
}

/** Runs `body` in the page with `client` in scope. */
const inApp = <T>(page: Page, body: string): Promise<T> => page.evaluate(`(async () => { const client = window.client; ${body} })()`) as Promise<T>

t.test('a new user logs in through the redirect flow, signs up, reloads, and logs out', async (t) => {
  const page = await (await browser.newContext()).newPage()
  await openApp(page)
  const returnTo = `${appOrigin}/back`
  await page.goto(await inApp<string>(page, `return client.redirectUrl('google', ${JSON.stringify(returnTo)})`))
  await page.waitForURL((url) => url.origin === gateway.google.issuer)
  await page.fill('input[name=sub]', 'web-client-1')
  await page.fill('input[name=email]', 'web1@example.com')
  // No name at Google: the gateway asks for a nickname.
  await page.fill('input[name=name]', '')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL((url) => url.href.startsWith(returnTo))
  t.notMatch(page.url(), /code=|state=|token/, 'no secret in the address bar')

  await openApp(page, new URL(page.url()).pathname + new URL(page.url()).search)
  const back = await inApp<{ status: string; missing: string[] }>(page, 'return client.completeRedirect(location.href)')
  t.equal(back.status, 'signup_required')
  t.ok(back.missing.includes('nickname'))
  const signedUp = await inApp<{ status: string; user: { nickname: string } }>(page, "return client.finishSignup({ nickname: 'Web One' })")
  t.equal(signedUp.status, 'authenticated')
  t.equal(await inApp<string>(page, "return (await client.me()).nickname"), 'Web One')
  t.same(await page.evaluate('window.changes'), ['signed_in'])
  t.notMatch(await page.evaluate('document.cookie'), /refresh/, 'the refresh token is not readable by the page')
  t.equal(await page.evaluate('Object.keys(localStorage).length + Object.keys(sessionStorage).length'), 0, 'nothing kept in web storage')

  // A reload starts from nothing but the cookie.
  await openApp(page)
  t.match(await inApp<string>(page, 'return client.refresh()'), /^ey/, 'the refresh cookie brings the session back')
  t.equal(await inApp<string>(page, "return (await client.me()).nickname"), 'Web One')

  await inApp(page, 'await client.logout()')
  t.same(await page.evaluate('window.changes'), ['signed_in', 'signed_out'])
  await openApp(page)
  t.equal(await inApp<number>(page, 'try { await client.refresh(); return 200 } catch (error) { return error.status }'), 401, 'after logout a reload is signed out')
})

t.test('50 parallel API calls across an access-token expiry cause exactly one refresh; a Redis outage keeps the app signed in', async (t) => {
  const page = await (await browser.newContext()).newPage()
  await openApp(page)
  await page.goto(await inApp<string>(page, `return client.redirectUrl('google', ${JSON.stringify(`${appOrigin}/back`)})`))
  await page.waitForURL((url) => url.origin === gateway.google.issuer)
  await page.fill('input[name=sub]', 'web-client-2')
  await page.fill('input[name=name]', 'Web Two')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL((url) => url.href.startsWith(`${appOrigin}/back`))
  await openApp(page, new URL(page.url()).pathname + new URL(page.url()).search)
  t.equal(await inApp<string>(page, 'return (await client.completeRedirect(location.href)).status'), 'signed_in', 'a profile with a name needs no signup')

  // The access token lives 30 s; the client refreshes 5 s before it ends.
  await page.waitForTimeout(25_500)
  const before = refreshes
  const statuses = await inApp<number[]>(page, `return Promise.all(Array.from({ length: 50 }, () => client.fetch(${JSON.stringify(`${gatewayUrl}/auth/me`)}, { credentials: 'include' }).then((r) => r.status)))`)
  t.same([...new Set(statuses)], [200], 'all fifty answered')
  t.equal(refreshes - before, 1, 'one refresh for all fifty')

  gateway.testRedis.pause()
  t.teardown(() => gateway.testRedis.resume())
  setTimeout(() => gateway.testRedis.resume(), 3_000).unref()
  const during = refreshes
  t.match(await inApp<string>(page, 'return client.refresh()'), /^ey/, 'the refresh succeeds once Redis is back')
  t.ok(refreshes - during > 1, `retried meanwhile (${refreshes - during} requests)`)
  t.equal(await inApp<string>(page, "return (await client.me()).nickname"), 'Web Two')
  t.same(await page.evaluate('window.changes'), ['signed_in'], 'never signed out by the outage')
})
