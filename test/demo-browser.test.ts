// A newcomer clicks through the demo in a real browser (Debian's Chromium driven by
// playwright-core): log in at the emulated provider, finish signup, refresh, reload, log
// out, and come back as a returning user; Apple's form POST; link and unlink providers; every step says what happened, and a first
// visit, at either loopback address, leaves nothing red in the browser's console.

import { existsSync } from 'node:fs'
import { chromium, type Page } from 'playwright-core'
import t from 'tap'
import { startTestGateway } from './support/gateway.js'

const CHROMIUM = '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`)

const gateway = await startTestGateway({ database: 'pglite', listen: true })
t.teardown(() => gateway.close())
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
})
t.teardown(() => browser.close())
const demo = `${gateway.config.publicUrl}/demo`
// The address the start log prints; PUBLIC_URL says localhost.
const demoAt127 = `http://127.0.0.1:${gateway.config.port}/demo`

/** What the browser's console would show in red: errors, uncaught exceptions, refused requests. */
function consoleProblems(page: Page): string[] {
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`)
  })
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`))
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`)
  })
  page.on('requestfailed', (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`))
  return problems
}

/** The providers the demo lists as linked to the account. */
const linkedProviders = (page: Page) => page.$$eval('#identities li', (items) => items.map((item) => item.getAttribute('data-provider')))

async function signInAtGoogle(page: Page, account: { sub: string; email?: string; name?: string }) {
  await page.getByRole('link', { name: 'Log in with Google' }).click()
  await page.waitForURL((url) => url.origin === gateway.google.issuer)
  await page.fill('input[name=sub]', account.sub)
  await page.fill('input[name=email]', account.email ?? '')
  await page.fill('input[name=name]', account.name ?? '')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL((url) => url.href.startsWith(demo))
}

t.test('a new user signs up, refreshes, reloads, logs out, and comes back', async (t) => {
  const context = await browser.newContext()
  const page = await context.newPage()
  await page.goto(demo)
  await page.getByRole('heading', { name: 'Log in' }).waitFor()

  await signInAtGoogle(page, { sub: 'browser-newcomer', email: 'newcomer@example.com' })
  await page.getByRole('heading', { name: 'Finish signing up' }).waitFor()
  t.notMatch(page.url(), /code=|state=|signupToken|ticket/, 'no secret in the address bar')
  t.equal(await page.inputValue('input[name=email]'), 'newcomer@example.com', 'the provider email is offered')
  await page.fill('input[name=nickname]', 'Newcomer')
  await page.getByRole('button', { name: 'Create my account' }).click()
  await page.getByRole('heading', { name: 'Signed in as Newcomer' }).waitFor()
  await page.getByText('Account created: welcome, Newcomer.').waitFor()
  t.same(await linkedProviders(page), ['google'])

  const cookies = await context.cookies()
  const refreshCookie = cookies.find((cookie) => cookie.name === 'refresh_token')
  t.ok(refreshCookie?.httpOnly, 'the refresh token sits in an HttpOnly cookie')
  t.equal(await page.evaluate('document.cookie'), '', 'scripts cannot read any gateway cookie')

  const cookieBefore = refreshCookie?.value
  await page.getByRole('button', { name: 'Refresh tokens' }).click()
  await page.getByText(/^Tokens refreshed at .+: a new access token/).waitFor()
  await page.getByRole('heading', { name: 'Signed in as Newcomer' }).waitFor()
  const cookieAfter = (await context.cookies()).find((cookie) => cookie.name === 'refresh_token')?.value
  t.not(cookieAfter, cookieBefore, 'the refresh says so, and the cookie was rotated')
  await page.reload()
  await page.getByRole('heading', { name: 'Signed in as Newcomer' }).waitFor()
  await page.getByText('Welcome back: the session was resumed from the refresh cookie.').waitFor()
  t.pass('a reload keeps the session through the cookie, and says so')

  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByText('You are logged out.').waitFor()
  await page.reload()
  await page.getByRole('heading', { name: 'Log in' }).waitFor()
  t.pass('after logout a reload shows the login again')

  await signInAtGoogle(page, { sub: 'browser-newcomer' })
  await page.getByRole('heading', { name: 'Signed in as Newcomer' }).waitFor()
  await page.getByText('Logged in with Google.').waitFor()
  t.pass('the returning user is signed in without a second signup')
  t.equal(await gateway.database.prisma.user.count(), 1, 'one account')
  await context.close()
})

t.test('cancelling at the provider comes back with a message', async (t) => {
  const page = await browser.newPage()
  await page.goto(demo)
  await page.getByRole('link', { name: 'Log in with Google' }).click()
  await page.waitForURL((url) => url.origin === gateway.google.issuer)
  await page.getByRole('button', { name: 'Cancel' }).click()
  await page.getByText('Login did not complete: access_denied').waitFor()
  t.pass('the app shows why the login stopped')
  await page.close()
})

t.test('Kakao and Naver: click through the emulated consent screens', async (t) => {
  const providers = [
    { label: 'Kakao', origin: new URL(gateway.emulated!.kakao.authUrl).origin, id: '1376016924429759228', nickname: '카카오 사용자', agree: 'Agree and continue' },
    { label: 'Naver', origin: new URL(gateway.emulated!.naver.authUrl).origin, id: 'naver-Zx8_base64/id==', nickname: '네이버 사용자', agree: '동의하기 (Agree)' },
  ]
  for (const provider of providers) {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(demo)
    await page.getByRole('link', { name: `Log in with ${provider.label}` }).click()
    await page.waitForURL((url) => url.origin === provider.origin)
    await page.fill('input[name=id]', provider.id)
    await page.fill('input[name=nickname]', provider.nickname)
    await page.getByRole('button', { name: provider.agree }).click()
    await page.getByRole('heading', { name: `Signed in as ${provider.nickname}` }).waitFor()
    t.same(await linkedProviders(page), [provider.label.toLowerCase()], `${provider.label}: signed in, identity linked`)
    await context.close()
  }
  const subjects = (await gateway.database.prisma.identity.findMany({ where: { provider: { in: ['kakao', 'naver'] } } })).map((i) => i.subject).sort()
  t.same(subjects, ['1376016924429759228', 'naver-Zx8_base64/id=='], 'subjects stored exactly as the providers sent them')
})

t.test('Apple through its cross-site form POST, then Google linked and Apple unlinked from the page', async (t) => {
  const context = await browser.newContext()
  const page = await context.newPage()
  const problems = consoleProblems(page)
  await page.goto(demo)
  await page.getByRole('link', { name: 'Log in with Apple' }).click()
  await page.waitForURL((url) => url.origin === gateway.apple!.issuer)
  await page.fill('input[name=sub]', '001234.browser-apple')
  await page.fill('input[name=email]', 'apple-user@privaterelay.appleid.com')
  await page.fill('input[name=first_name]', 'Appleseed')
  await page.fill('input[name=last_name]', '')
  await page.getByRole('button', { name: 'Continue' }).click()
  // Apple's page POSTs to the gateway from another site: only a SameSite=None cookie rides along.
  await page.getByRole('heading', { name: 'Signed in as Appleseed' }).waitFor()
  t.same(await linkedProviders(page), ['apple'], 'signed in with the name from Apple\'s first POST')

  await page.getByRole('button', { name: 'Link Google' }).click()
  await page.waitForURL((url) => url.origin === gateway.google.issuer)
  await page.fill('input[name=sub]', 'browser-linked-google')
  await page.fill('input[name=email]', 'linked@example.com')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('Google is now linked to this account.').waitFor()
  t.same(await linkedProviders(page), ['apple', 'google'], 'both identities are listed')
  t.notMatch(page.url(), /code=|state=|token/i, 'no secret in the address bar')

  await page.locator('#identities li[data-provider=apple] button').click()
  await page.getByText('Apple is no longer linked to this account.').waitFor()
  t.same(await linkedProviders(page), ['google'])
  await page.locator('#identities li[data-provider=google] button').click()
  await page.getByText(/^Unlink refused: .*only identity/).waitFor()
  t.same(await linkedProviders(page), ['google'], 'the last identity stays')
  // The refused unlink is the one expected 409; the emulators' pages name no icon (a console-only 404).
  const unexpected = problems.filter((problem) => !problem.includes('/auth/identities/') && !problem.startsWith('console: Failed to load resource'))
  t.same(unexpected, [], 'no uncaught error, no other refused request')
  const owner = await gateway.database.prisma.identity.findUnique({ where: { provider_subject: { provider: 'google', subject: 'browser-linked-google' } }, select: { user: { select: { nickname: true } } } })
  t.equal(owner?.user.nickname, 'Appleseed', 'the Google identity belongs to the Apple user\'s account')
  await context.close()
})

t.test('a first visit leaves the console clean, at localhost and at 127.0.0.1', async (t) => {
  for (const address of [demo, demoAt127]) {
    const context = await browser.newContext()
    const page = await context.newPage()
    const problems = consoleProblems(page)
    const scripts: string[] = []
    page.on('request', (request) => {
      if (request.resourceType() === 'script') scripts.push(new URL(request.url()).pathname)
    })
    await page.goto(address)
    await page.getByRole('heading', { name: 'Log in' }).waitFor()
    await page.waitForLoadState('networkidle')
    t.same(scripts, ['/demo/demo.js', '/demo/client.js'], `${address}: the page runs on the client package`)
    t.equal(page.url(), demo, `${address}: the demo is served at PUBLIC_URL`)
    t.same(problems, [], `${address}: no console error, no refused request`)
    // Headless Chromium fetches no icon; a desktop browser asks for /favicon.ico (a 404) unless the page names one.
    const icon = await page.locator('link[rel=icon]').getAttribute('href')
    const iconResponse = await page.request.get(new URL(icon ?? '/favicon.ico', page.url()).href)
    t.equal(iconResponse.status(), 200, `${address}: the page names its icon, and it is served`)
    await context.close()
  }
})

t.test('opened at 127.0.0.1, the address the start log prints, a login completes', async (t) => {
  const context = await browser.newContext()
  const page = await context.newPage()
  await page.goto(demoAt127)
  await signInAtGoogle(page, { sub: 'browser-loopback', email: 'loopback@example.com' })
  await page.fill('input[name=nickname]', 'Loopback')
  await page.getByRole('button', { name: 'Create my account' }).click()
  await page.getByRole('heading', { name: 'Signed in as Loopback' }).waitFor()
  t.pass('signed up and signed in')
  await context.close()
})
