// The emulator console of `npm run dev` (scripts/dev-console.ts), against a real listening
// gateway and the emulators `npm run dev` starts: its Kakao form makes the emulated Kakao's
// unlink callback delete a member's account, its Apple form does the same with a
// consent-revoked notification; bad input is a 400 that sends nothing; only its own pages
// on loopback are answered.

import { createHash, randomBytes } from 'node:crypto'
import { request } from 'node:http'
import t from 'tap'
import { EMULATED_CREDENTIALS } from '../emulators/providers.js'
import { SIGN_IN_PAGE_DEFAULTS, startDevConsole } from '../scripts/dev-console.js'
import { APP_ORIGIN, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite', listen: true })
t.teardown(() => gateway.close())
const emulated = gateway.emulated!
const prisma = gateway.database.prisma
const devConsole = await startDevConsole({ emulators: emulated, publicUrl: gateway.config.publicUrl, port: 0 })
t.teardown(() => devConsole.close())

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex')
const refresh = (refreshToken: string) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const usersWith = (publicId: string) => prisma.user.count({ where: { publicId } })

/** Posts a console form as the browser would; `body` a string for repeated fields. */
async function submit(path: string, body: Record<string, string> | string, headers: Record<string, string> = {}) {
  const response = await fetch(new URL(path, devConsole.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: typeof body === 'string' ? body : new URLSearchParams(body),
  })
  return { status: response.status, html: await response.text() }
}

/** The result line the console shows above its forms. */
const resultLine = (html: string) => /<p class="(?:ok|error)" id="result">([^<]*)<\/p>/.exec(html)?.[1]

let nextMember = 8_100_000_000n

/** A Kakao member logged in through the native SDK, whose only identity is Kakao. */
async function kakaoUser() {
  const memberId = String(nextMember++)
  const { accessToken } = await emulated.kakao.sdkLogin({ id: memberId, nickname: `member ${memberId}` })
  const login = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', accessToken } })
  if (login.statusCode !== 200) throw new Error(`kakao login: ${login.statusCode} ${login.body}`)
  return { memberId, userId: login.json().user.id as string, refreshToken: login.json().refreshToken as string }
}

/** An Apple user signed in natively (identity token and nonce), whose only identity is Apple. */
async function appleUser(sub: string) {
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await emulated.apple.nativeSignIn(EMULATED_CREDENTIALS.apple.bundleId, { sub, name: { firstName: 'Con' } }, { nonce: sha256Hex(rawNonce) })
  const login = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'apple', idToken: signIn.identityToken, nonce: rawNonce, name: { givenName: 'Con' } } })
  if (login.statusCode !== 200) throw new Error(`apple login: ${login.statusCode} ${login.body}`)
  return { userId: login.json().user.id as string, refreshToken: login.json().refreshToken as string }
}

/** The value an emulator's sign-in page suggests for an input, reached through the gateway's redirect. */
async function signInPageDefault(provider: 'kakao' | 'apple', input: string): Promise<string | undefined> {
  const start = await gateway.app.inject({ method: 'GET', url: `/auth/authorize/${provider}?returnTo=${encodeURIComponent(`${APP_ORIGIN}/signed-in`)}` })
  if (start.statusCode !== 302) throw new Error(`authorize ${provider}: ${start.statusCode} ${start.body}`)
  const html = await (await fetch(String(start.headers.location))).text()
  return new RegExp(`<input name="${input}"[^>]* value="([^"]*)"`).exec(html)?.[1]
}

t.test('GET / shows both forms, with every referrer_type and notification type, prefilled as the sign-in pages are', async (t) => {
  t.match(devConsole.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
  const response = await fetch(devConsole.url)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^text\/html/)
  t.match(response.headers.get('content-security-policy'), /default-src 'none'/)
  const html = await response.text()
  t.match(html, /<form method="post" action="\/kakao\/unlink">[\s\S]*Kakao: the member unlinks the app/)
  t.match(html, /<form method="post" action="\/apple\/notify">[\s\S]*Apple: server-to-server notification/)
  for (const referrer of ['ACCOUNT_DELETE', 'FORCED_ACCOUNT_DELETE', 'UNLINK_FROM_APPS', 'UNLINK_FROM_ADMIN', 'INCOMPLETE_SIGN_UP']) t.match(html, `<option value="${referrer}"`)
  for (const type of ['consent-revoked', 'account-delete', 'email-disabled', 'email-enabled']) t.match(html, `<option value="${type}"`)
  t.match(html, `${gateway.config.publicUrl}/webhooks/kakao/unlink`)
  t.notMatch(html, emulated.kakao.adminKey, 'no admin key on the page')
  t.notOk(resultLine(html), 'no result before anything was sent')

  t.equal(await signInPageDefault('kakao', 'id'), SIGN_IN_PAGE_DEFAULTS.kakaoMemberId, 'the Kakao form starts with the Kakao login page\'s member id')
  t.equal(await signInPageDefault('apple', 'sub'), SIGN_IN_PAGE_DEFAULTS.appleSub, 'the Apple form starts with the Apple sign-in page\'s sub')
  t.match(html, `name="member_id" required pattern="[1-9][0-9]{0,18}" maxlength="19" value="${SIGN_IN_PAGE_DEFAULTS.kakaoMemberId}"`)
  t.match(html, `value="${SIGN_IN_PAGE_DEFAULTS.appleSub}"`)
})

t.test('the Kakao form: the emulated Kakao calls the unlink callback, and the member\'s only account is deleted', async (t) => {
  const member = await kakaoUser()
  const unrelated = await kakaoUser()
  const { status, html } = await submit('/kakao/unlink', { member_id: member.memberId, referrer_type: 'ACCOUNT_DELETE' })
  t.equal(status, 200)
  t.match(resultLine(html), `Kakao unlink callback for member ${member.memberId} (ACCOUNT_DELETE): the gateway answered HTTP 200.`)
  t.match(html, `value="${member.memberId}"`, 'the form keeps what was sent, to send again')
  t.equal(await usersWith(member.userId), 0, 'the account is gone (LAST_IDENTITY_REVOKED=delete)')
  t.equal((await refresh(member.refreshToken)).statusCode, 401, 'the session ended')
  t.equal(await usersWith(unrelated.userId), 1, 'another member is untouched')
  const audit = await prisma.auditEvent.findFirst({ where: { userId: member.userId, action: 'user.deleted' } })
  t.match(audit, { actor: 'provider:kakao' })
})

t.test('the Apple form: the emulated Apple notifies consent-revoked, and the user\'s only account is deleted', async (t) => {
  const user = await appleUser('001234.console-revoked')
  const { status, html } = await submit('/apple/notify', { sub: '001234.console-revoked', type: 'consent-revoked' })
  t.equal(status, 200)
  t.match(resultLine(html), 'Apple consent-revoked notification for 001234.console-revoked: the gateway answered HTTP 200.')
  t.equal(await usersWith(user.userId), 0, 'the account is gone')
  t.equal((await refresh(user.refreshToken)).statusCode, 401, 'the session ended')
})

t.test('bad input is a 400 page that sends nothing, echoing the input escaped', async (t) => {
  const member = await kakaoUser()
  const apple = await appleUser('001234.console-untouched')
  const refusals: [string, Record<string, string> | string][] = [
    ['/kakao/unlink', { member_id: 'abc', referrer_type: 'ACCOUNT_DELETE' }],
    ['/kakao/unlink', { member_id: '', referrer_type: 'ACCOUNT_DELETE' }],
    ['/kakao/unlink', { member_id: `0${member.memberId}`, referrer_type: 'ACCOUNT_DELETE' }],
    ['/kakao/unlink', { member_id: '12345678901234567890', referrer_type: 'ACCOUNT_DELETE' }],
    ['/kakao/unlink', { member_id: member.memberId, referrer_type: 'SOMETHING_ELSE' }],
    ['/kakao/unlink', { member_id: member.memberId }],
    ['/kakao/unlink', `member_id=${member.memberId}&member_id=1&referrer_type=ACCOUNT_DELETE`],
    ['/apple/notify', { sub: '001234 console-untouched', type: 'consent-revoked' }],
    ['/apple/notify', { sub: 'x'.repeat(256), type: 'consent-revoked' }],
    ['/apple/notify', { sub: '001234.console-ü', type: 'consent-revoked' }],
    ['/apple/notify', { sub: '001234.console-untouched', type: 'account-deleted' }],
    ['/apple/notify', { type: 'consent-revoked' }],
  ]
  for (const [path, body] of refusals) {
    const { status, html } = await submit(path, body)
    t.equal(status, 400, `${path} ${typeof body === 'string' ? body : JSON.stringify(body)}`)
    t.match(resultLine(html), /^Not sent: /)
  }
  const json = await fetch(new URL('/kakao/unlink', devConsole.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ member_id: member.memberId, referrer_type: 'ACCOUNT_DELETE' }) })
  t.equal(json.status, 400, 'a JSON body is not the form')
  const escaped = await submit('/kakao/unlink', { member_id: '<b>"x"</b>', referrer_type: 'ACCOUNT_DELETE' })
  t.equal(escaped.status, 400)
  t.notMatch(escaped.html, '<b>', 'the input is echoed escaped')
  t.match(escaped.html, 'value="&#60;b&#62;&#34;x&#34;&#60;/b&#62;"')

  t.equal(await usersWith(member.userId), 1, 'the Kakao member is still there')
  t.equal(await usersWith(apple.userId), 1, 'the Apple user is still there')
  t.equal((await refresh(member.refreshToken)).statusCode, 200, 'and their sessions work')
  t.equal((await refresh(apple.refreshToken)).statusCode, 200)
})

t.test('only its own pages on loopback are answered: other hosts, other origins, other paths and methods are refused', async (t) => {
  const member = await kakaoUser()
  const crossSite = await submit('/kakao/unlink', { member_id: member.memberId, referrer_type: 'ACCOUNT_DELETE' }, { origin: 'https://evil.example' })
  t.equal(crossSite.status, 403, 'a form posted from another site')
  const sameOrigin = new URL(devConsole.url).origin
  // fetch will not forge Host: node:http does, as a browser does for a rebound DNS name.
  const rebound = await new Promise<number>((resolve, reject) => {
    request(devConsole.url, { headers: { host: 'attacker.example' } }, (res) => (res.resume(), resolve(res.statusCode!)))
      .once('error', reject)
      .end()
  })
  t.equal(rebound, 421, 'a request for another host name')
  t.equal((await fetch(new URL('/kakao/unlink', devConsole.url))).status, 405, 'GET of a form target')
  t.equal((await fetch(new URL('/elsewhere', devConsole.url))).status, 404)
  t.equal(await usersWith(member.userId), 1, 'nothing was sent')
  const fromItsOwnPage = await submit('/kakao/unlink', { member_id: member.memberId, referrer_type: 'UNLINK_FROM_APPS' }, { origin: sameOrigin })
  t.equal(fromItsOwnPage.status, 200, 'its own form, with its own Origin, is sent')
  t.equal(await usersWith(member.userId), 0)
})

t.test('a console for Apple alone offers no Kakao form; a gateway that is down is reported as such', async (t) => {
  const appleOnly = await startDevConsole({ emulators: emulated, publicUrl: 'http://127.0.0.1:1', port: 0, providers: ['apple'] })
  t.teardown(() => appleOnly.close())
  const html = await (await fetch(appleOnly.url)).text()
  t.notMatch(html, 'action="/kakao/unlink"')
  t.match(html, 'action="/apple/notify"')
  const kakao = await fetch(new URL('/kakao/unlink', appleOnly.url), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'member_id=1&referrer_type=ACCOUNT_DELETE' })
  t.equal(kakao.status, 404)
  const down = await fetch(new URL('/apple/notify', appleOnly.url), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'sub=001234.nobody&type=email-disabled' })
  t.equal(down.status, 502)
  t.match(resultLine(await down.text()), /http:\/\/127\.0\.0\.1:1\/webhooks\/apple could not be reached .* Is the gateway running\?/)
  await t.rejects(startDevConsole({ emulators: emulated, publicUrl: 'http://127.0.0.1:1', port: 0, host: '0.0.0.0' }), /loopback only/)
})
