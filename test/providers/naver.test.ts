// Naver login through the real gateway against the Naver emulator (Naver's documented wire format): the
// legacy OAuth 2.0 flow with `state` at the token endpoint, errors that arrive with HTTP
// 200, ids in both formats kept exactly, an unverified contact email that is not taken,
// native SDK access tokens, and every way Naver can fail: each failure creates nobody.

import t from 'tap'
import { startNaverEmulator, type NaverAccount, type NaverEndpoint, type NaverFault } from '../../emulators/naver.js'
import type { NaverSettings } from '../../providers/naver.js'
import { providerDefinitions } from '../../providers/registry.js'
import type { ProviderDefinition } from '../../providers/types.js'
import { InvalidGrant, InvalidRequest, ProviderError } from '../../src/common/errors.js'
import { REDIRECT_URI, startTestGateway, type TestGateway } from '../support/gateway.js'

const NAVER = { clientId: 'naverTestClientId01', clientSecret: 'naverTestSecret01' }
/** An id of an application registered before 2021-05-01: INT64 digits, above 2^53. */
const LEGACY_ID = '9007199254740993'
/** The current format: base64-style, 64 characters, with the characters URL handling mangles. */
const MODERN_ID = 'Zm9v+YmFy/YmF6PQ==Qk1X+d2hhdGV2ZXI/c29tZXRoaW5nX2xvbmdlcl90aGFuX'

// Through the registry: importing providers/naver.js first would enter the import cycle
// settings.ts -> src/config.ts -> registry.ts before `naver` is defined.
const naver = providerDefinitions.find((definition) => definition.name === 'naver') as ProviderDefinition<NaverSettings>

const emulator = await startNaverEmulator({ ...NAVER, redirectUris: [REDIRECT_URI] })
t.teardown(() => emulator.stop())
const naverEnv = {
  NAVER_CLIENT_ID: NAVER.clientId,
  NAVER_CLIENT_SECRET: NAVER.clientSecret,
  NAVER_AUTH_URL: emulator.authUrl,
  NAVER_API_URL: emulator.apiUrl,
}
const gateway = await startTestGateway({ database: 'pglite', env: naverEnv })
t.teardown(() => gateway.close())
t.beforeEach(() => emulator.clearFaults())

const login = (gw: TestGateway, payload: Record<string, unknown>) =>
  gw.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'naver', ...payload } })

/** POST /auth/login/start, then the user agrees at Naver: what the app holds at its callback. */
async function authorizeAtNaver(gw: TestGateway, account: NaverAccount) {
  const start = await gw.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'naver', redirectUri: REDIRECT_URI } })
  if (start.statusCode !== 200) throw new Error(`login/start failed: ${start.statusCode} ${start.body}`)
  const { authorizationUrl, state } = start.json()
  const callback = await emulator.authorize(authorizationUrl, account)
  const code = callback.searchParams.get('code')
  if (!code) throw new Error(`no code in ${callback.href}`)
  return { authorizationUrl: authorizationUrl as string, state: state as string, code, callback }
}

/** The whole browserless login: start, agree at Naver, post the code with the state. */
async function loginWithNaver(gw: TestGateway, account: NaverAccount) {
  const { code, state } = await authorizeAtNaver(gw, account)
  return login(gw, { code, state, redirectUri: REDIRECT_URI })
}

const counts = async (gw: TestGateway = gateway) => ({
  users: await gw.database.prisma.user.count(),
  identities: await gw.database.prisma.identity.count(),
})

async function subjectOf(gw: TestGateway, userId: string) {
  const identity = await gw.database.prisma.identity.findFirst({ where: { provider: 'naver', user: { publicId: userId } } })
  return identity?.subject
}

t.test('start sends the browser to the legacy Naver authorize endpoint, without PKCE', async (t) => {
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'naver', redirectUri: REDIRECT_URI } })
  t.equal(start.statusCode, 200, { body: start.body })
  const url = new URL(start.json().authorizationUrl)
  t.equal(`${url.origin}${url.pathname}`, `${emulator.authUrl}/oauth2.0/authorize`)
  t.equal(url.searchParams.get('response_type'), 'code')
  t.equal(url.searchParams.get('client_id'), NAVER.clientId)
  t.equal(url.searchParams.get('redirect_uri'), REDIRECT_URI)
  t.equal(url.searchParams.get('state'), start.json().state, 'the state of the gateway goes to Naver')
  t.notOk(url.searchParams.has('code_challenge'), 'no PKCE on the legacy flow')
  t.notOk(url.searchParams.has('nonce'), 'no nonce: there is no ID token to carry it back')
})

t.test('a new user with a nickname signs in, and comes back to the same account', async (t) => {
  const account = { id: '32742776', nickname: 'OpenAPI', name: '오픈 API', email: 'openapi@naver.com', profileImage: 'https://phinf.pstatic.net/a/b.jpg' }
  const first = await loginWithNaver(gateway, account)
  t.equal(first.statusCode, 200, { body: first.body })
  const body = first.json()
  t.match(body, { status: 'authenticated', isNewUser: true, tokenType: 'Bearer', user: { nickname: 'OpenAPI', photo: 'https://phinf.pstatic.net/a/b.jpg' } })
  t.notOk('email' in body.user, 'the unverified Naver contact email is not taken as the account email')
  t.ok(body.refreshToken, 'a native client gets its refresh token')

  const me = await gateway.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${body.accessToken}` } })
  t.equal(me.statusCode, 200, { body: me.body })
  t.match(me.json(), { id: body.user.id, nickname: 'OpenAPI', identities: [{ provider: 'naver' }] })

  const again = await loginWithNaver(gateway, { ...account, nickname: 'Renamed' })
  t.equal(again.statusCode, 200, { body: again.body })
  t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: body.user.id } })
})

t.test('a photo that is not https is not taken', async (t) => {
  const response = await loginWithNaver(gateway, { id: '1000000001', nickname: 'Plain', profileImage: 'http://phinf.pstatic.net/plain.jpg' })
  t.equal(response.statusCode, 200, { body: response.body })
  t.equal(response.json().status, 'authenticated')
  t.notOk('photo' in response.json().user)
})

t.test('a name is not used as the nickname: the user chooses one at signup', async (t) => {
  const before = await counts()
  const response = await loginWithNaver(gateway, { id: '1000000002', name: '김실명' })
  t.equal(response.statusCode, 200, { body: response.body })
  t.match(response.json(), { status: 'signup_required', missing: ['nickname'] })
  t.notOk('nickname' in response.json().profile, 'the legal name is not offered as a display name')
  t.same(await counts(), before, 'no user before signup')
})

t.test('both id formats become the exact subject', async (t) => {
  for (const id of [LEGACY_ID, MODERN_ID]) {
    const response = await loginWithNaver(gateway, { id, nickname: `user-${id.length}` })
    t.equal(response.statusCode, 200, { body: response.body })
    t.equal(response.json().status, 'authenticated')
    t.equal(await subjectOf(gateway, response.json().user.id), id, `${id.length}-character id stored as sent`)
    const again = await loginWithNaver(gateway, { id, nickname: 'again' })
    t.equal(again.json().user.id, response.json().user.id, 'the same id finds the same account')
  }
  const similar = await loginWithNaver(gateway, { id: MODERN_ID.replace(/\+/g, ' '), nickname: 'not the same' })
  t.equal(similar.statusCode, 502, 'an id with spaces is not a Naver id')
  const lower = await loginWithNaver(gateway, { id: MODERN_ID.toLowerCase(), nickname: 'case matters' })
  t.equal(lower.json().isNewUser, true, 'ids differing only in case are different people')
})

t.test('with SIGNUP_REQUIRED_FIELDS=nickname,email, every new Naver user is asked for an email', async (t) => {
  const strict = await startTestGateway({ database: 'pglite', env: { ...naverEnv, SIGNUP_REQUIRED_FIELDS: 'nickname,email' } })
  t.teardown(() => strict.close())

  const without = await loginWithNaver(strict, { id: '2000000001', nickname: 'NoMail' })
  t.equal(without.statusCode, 200, { body: without.body })
  t.match(without.json(), { status: 'signup_required', missing: ['email'], profile: { nickname: 'NoMail' } })

  const withEmail = await loginWithNaver(strict, { id: '2000000002', nickname: 'HasMail', email: 'someone.else@example.com' })
  t.equal(withEmail.statusCode, 200, { body: withEmail.body })
  t.match(withEmail.json(), { status: 'signup_required', missing: ['email'] }, 'an unverified email does not count as known')
  t.notOk('email' in withEmail.json().profile, 'and is not offered as if it were')
  t.same(await counts(strict), { users: 0, identities: 0 }, 'nobody exists before signup')

  const signup = await strict.app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { signupToken: withEmail.json().signupToken, nickname: 'HasMail', email: 'hasmail@example.com' },
  })
  t.equal(signup.statusCode, 201, { body: signup.body })
  t.match(signup.json().user, { nickname: 'HasMail', email: 'hasmail@example.com' })
  t.equal(await subjectOf(strict, signup.json().user.id), '2000000002')
})

t.test('a code Naver already redeemed (HTTP 200 error body) is 401 and creates nobody', async (t) => {
  const before = await counts()
  const { code, state } = await authorizeAtNaver(gateway, { id: '3000000001', nickname: 'Intercepted' })
  // Someone else redeems the code first, as an interceptor with the app's credentials would.
  const stolen = await fetch(`${emulator.authUrl}/oauth2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: NAVER.clientId, client_secret: NAVER.clientSecret, code, state }),
  })
  t.equal(stolen.status, 200)
  t.ok(((await stolen.json()) as { access_token?: string }).access_token, 'the first redemption gets the tokens')
  const response = await login(gateway, { code, state, redirectUri: REDIRECT_URI })
  t.equal(response.statusCode, 401, { body: response.body })
  t.equal(response.json().error, 'invalid_grant')
  t.notMatch(response.body, /session/, 'the error text of Naver is not echoed')
  t.same(await counts(), before)
})

t.test('a code posted with the state of another login is refused by Naver: the state binds the code', async (t) => {
  const before = await counts()
  const victim = await authorizeAtNaver(gateway, { id: '3000000002', nickname: 'Victim' })
  const other = await authorizeAtNaver(gateway, { id: '3000000003', nickname: 'Other' })
  const response = await login(gateway, { code: victim.code, state: other.state, redirectUri: REDIRECT_URI })
  t.equal(response.statusCode, 401, { body: response.body })
  t.equal(response.json().error, 'invalid_grant')
  t.same(await counts(), before)
})

t.test('posting the same code and state twice: the second is refused before Naver is asked', async (t) => {
  const { code, state } = await authorizeAtNaver(gateway, { id: '3000000004', nickname: 'Twice' })
  t.equal((await login(gateway, { code, state, redirectUri: REDIRECT_URI })).statusCode, 200)
  const users = await counts()
  const tokenCalls = emulator.requests.token
  const second = await login(gateway, { code, state, redirectUri: REDIRECT_URI })
  t.equal(second.statusCode, 400)
  t.equal(second.json().error, 'invalid_state')
  t.equal(emulator.requests.token, tokenCalls, 'no second token request')
  t.same(await counts(), users)
})

t.test('a reissued client secret: 502 for the user, a clear line for the operator', async (t) => {
  const before = await counts()
  emulator.setClientSecret('reissued-in-the-console')
  t.teardown(() => emulator.setClientSecret(NAVER.clientSecret))
  const response = await loginWithNaver(gateway, { id: '4000000001', nickname: 'Unlucky' })
  t.equal(response.statusCode, 502, { body: response.body })
  t.equal(response.json().error, 'provider_error')
  t.notMatch(response.body, /secret|wrong/i, 'nothing about the credentials reaches the client')
  t.same(await counts(), before)

  // What the log line says (GatewayError.detail).
  const settings = naver.readSettings(naverEnv, [], false)!
  const adapter = naver.create(settings, { httpTimeoutSeconds: 1, allowInsecureLoopback: true })
  const { code, state } = await authorizeAtNaver(gateway, { id: '4000000002', nickname: 'Unlucky' })
  const error = await adapter.exchangeCode({ code, state, redirectUri: REDIRECT_URI }).catch((e: unknown) => e)
  t.type(error, ProviderError)
  t.match((error as ProviderError).detail, /NAVER_CLIENT_SECRET/)
})

t.test('other token endpoint errors are trouble at Naver: 502, nobody created', async (t) => {
  for (const fault of [
    { kind: 'error', error: 'server_error', description: 'internal error' },
    { kind: 'error', error: 'unauthorized_client', description: 'unauthorized client' },
    { kind: 'error', error: 'invalid_client', description: 'Bad client', status: 401 },
  ] as const) {
    const before = await counts()
    emulator.failNext('token', fault)
    const response = await loginWithNaver(gateway, { id: '4000000003', nickname: 'Unlucky' })
    t.equal(response.statusCode, 502, `${fault.error}: ${response.body}`)
    t.equal(response.json().error, 'provider_error')
    t.same(await counts(), before)
  }
})

t.test('revoked consent', async (t) => {
  const account = { id: '5000000001', nickname: 'Revoker' }

  t.test('the SDK token of a user who withdrew consent is refused: 401, nobody created', async (t) => {
    const accessToken = emulator.sdkLogin(account)
    emulator.revokeConsent(account.id)
    const before = await counts()
    const response = await login(gateway, { accessToken })
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
    t.same(await counts(), before)
  })

  t.test('withdrawn between consent and the code exchange: 401, nobody created', async (t) => {
    const before = await counts()
    const { code, state } = await authorizeAtNaver(gateway, account)
    emulator.revokeConsent(account.id)
    const response = await login(gateway, { code, state, redirectUri: REDIRECT_URI })
    t.equal(response.statusCode, 401, { body: response.body })
    t.same(await counts(), before)
  })

  t.test('the user who revoked and consents again finds the same account', async (t) => {
    const first = await loginWithNaver(gateway, account)
    t.equal(first.json().status, 'authenticated', first.body)
    emulator.revokeConsent(account.id)
    const again = await loginWithNaver(gateway, account)
    t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: first.json().user.id } })
  })
})

t.test('Naver down or dropping the connection: 502, nobody created', async (t) => {
  for (const [endpoint, kind] of [['token', 'down'], ['profile', 'down'], ['token', 'disconnect'], ['profile', 'disconnect']] as const) {
    const before = await counts()
    emulator.failNext(endpoint, { kind })
    const response = await loginWithNaver(gateway, { id: '6000000001', nickname: 'Outage' })
    t.equal(response.statusCode, 502, `${endpoint} ${kind}: ${response.body}`)
    t.equal(response.json().error, 'provider_error')
    t.same(await counts(), before)
  }
  const recovered = await loginWithNaver(gateway, { id: '6000000001', nickname: 'Outage' })
  t.equal(recovered.json().status, 'authenticated', 'the next login works once Naver is back')
})

t.test('Naver too slow: 504 within the configured second, nobody created', async (t) => {
  // A gateway of its own: with one second for every test in this file, a first login that
  // is merely slow on a busy machine timed out.
  const impatient = await startTestGateway({ database: 'pglite', env: { ...naverEnv, PROVIDER_HTTP_TIMEOUT: '1' } })
  t.teardown(() => impatient.close())
  for (const endpoint of ['token', 'profile'] as const) {
    const before = await counts(impatient)
    const { code, state } = await authorizeAtNaver(impatient, { id: '7000000001', nickname: 'Patient' })
    emulator.failNext(endpoint, { kind: 'slow', delayMs: 5000 })
    const started = Date.now()
    const response = await login(impatient, { code, state, redirectUri: REDIRECT_URI })
    const elapsed = Date.now() - started
    t.equal(response.statusCode, 504, `${endpoint}: ${response.body}`)
    t.equal(response.json().error, 'provider_timeout')
    t.ok(elapsed >= 900 && elapsed < 2500, `${endpoint}: answered after ${elapsed} ms (PROVIDER_HTTP_TIMEOUT=1)`)
    t.same(await counts(impatient), before)
  }
})

t.test('malformed and oversized answers: 502, nobody created', async (t) => {
  const cases: [NaverEndpoint, NaverFault][] = [
    ['token', { kind: 'not-json' }],
    ['token', { kind: 'oversized' }],
    ['profile', { kind: 'not-json' }],
    ['profile', { kind: 'missing-id' }],
    ['profile', { kind: 'numeric-id' }],
    ['profile', { kind: 'result-code', resultcode: '024' }],
    ['profile', { kind: 'oversized' }],
    ['profile', { kind: 'oversized', bytes: 70 * 1024 }],
    ['profile', { kind: 'forbidden' }],
  ]
  for (const [endpoint, fault] of cases) {
    const before = await counts()
    emulator.failNext(endpoint, fault)
    const response = await loginWithNaver(gateway, { id: '8000000001', nickname: 'Garbled' })
    t.equal(response.statusCode, 502, `${endpoint} ${JSON.stringify(fault)}: ${response.body}`)
    t.equal(response.json().error, 'provider_error')
    t.same(await counts(), before)
  }
})

t.test('native SDK access tokens', async (t) => {
  t.test('a valid token signs in and finds the account made through the web flow', async (t) => {
    const account = { id: '9000000001', nickname: 'Mobile' }
    const web = await loginWithNaver(gateway, account)
    t.equal(web.json().status, 'authenticated', web.body)
    const response = await login(gateway, { accessToken: emulator.sdkLogin(account) })
    t.equal(response.statusCode, 200, { body: response.body })
    t.match(response.json(), { status: 'authenticated', isNewUser: false, user: { id: web.json().user.id } })
  })

  t.test('a new user with an SDK token is created like a web login', async (t) => {
    const response = await login(gateway, { accessToken: emulator.sdkLogin({ id: MODERN_ID.slice(0, 40), nickname: 'FreshPhone' }) })
    t.equal(response.statusCode, 200, { body: response.body })
    t.match(response.json(), { status: 'authenticated', isNewUser: true, user: { nickname: 'FreshPhone' } })
  })

  t.test('an unknown token: 401, nobody created', async (t) => {
    const before = await counts()
    const response = await login(gateway, { accessToken: 'AAAAnot+a/real=token' })
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
    t.same(await counts(), before)
  })

  t.test('a 401 that carries a WWW-Authenticate challenge is still the token refused: 401', async (t) => {
    const before = await counts()
    emulator.failNext('profile', { kind: 'challenge' })
    const response = await login(gateway, { accessToken: emulator.sdkLogin({ id: '9000000003', nickname: 'Challenged' }) })
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
    t.same(await counts(), before)
  })

  t.test('something that cannot be a bearer token is 401 without asking Naver', async (t) => {
    const profileCalls = emulator.requests.profile
    const response = await login(gateway, { accessToken: 'AAAA\r\nX-Injected: yes' })
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
    t.equal(emulator.requests.profile, profileCalls)
  })

  t.test('a token another app obtained never reaches the account made through ours', async (t) => {
    const account = { id: '9000000002', nickname: 'Target' }
    const ours = await loginWithNaver(gateway, account)
    t.equal(ours.json().status, 'authenticated', ours.body)
    const response = await login(gateway, { accessToken: emulator.sdkLogin(account, 'someOtherNaverApp') })
    t.equal(response.statusCode, 200, { body: response.body })
    t.not(response.json().user?.id, ours.json().user.id, 'Naver names the person differently for another app')
    t.equal(await subjectOf(gateway, response.json().user.id), emulator.idFor(account, 'someOtherNaverApp'))
  })
})

t.test('a code with only a native codeVerifier is refused before Naver is asked', async (t) => {
  const before = await counts()
  const tokenCalls = emulator.requests.token
  const response = await login(gateway, { code: 'a-code-from-naver', codeVerifier: 'v'.repeat(43), redirectUri: REDIRECT_URI })
  t.equal(response.statusCode, 400, { body: response.body })
  t.equal(response.json().error, 'invalid_request')
  t.match(response.json().message, /state|accessToken/)
  t.equal(emulator.requests.token, tokenCalls, 'no token request spent the code')
  t.same(await counts(), before)
})

t.test('the typed errors of the adapter', async (t) => {
  const adapter = naver.create(naver.readSettings(naverEnv, [], false)!, { httpTimeoutSeconds: 1, allowInsecureLoopback: true })
  await t.rejects(adapter.exchangeCode({ code: 'x', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) }), InvalidRequest)
  await t.rejects(adapter.verifyAccessToken!('AAAAunknown'), InvalidGrant)
  const accessToken = emulator.sdkLogin({ id: MODERN_ID, nickname: '  Spaced  ', email: 'x@naver.com' })
  const profile = await adapter.verifyAccessToken!(accessToken)
  t.same(profile, { subject: MODERN_ID, nickname: 'Spaced', photo: undefined, grant: { clientId: naverEnv.NAVER_CLIENT_ID, accessToken } }, 'email is never part of a Naver profile; the token is kept to revoke at deletion')
})

t.test('configuration', async (t) => {
  const problems: string[] = []
  t.equal(naver.readSettings({}, problems, false), undefined, 'no NAVER_CLIENT_ID: disabled')
  naver.readSettings({ NAVER_CLIENT_ID: 'id' }, problems, false)
  t.match(problems, [/NAVER_CLIENT_SECRET is required/])
  const settings = naver.readSettings({ NAVER_CLIENT_ID: 'id', NAVER_CLIENT_SECRET: 's' }, [], true)
  t.match(settings, { authUrl: 'https://nid.naver.com', apiUrl: 'https://openapi.naver.com' })
  const production: string[] = []
  naver.readSettings({ NAVER_CLIENT_ID: 'id', NAVER_CLIENT_SECRET: 's', NAVER_API_URL: 'http://naver.example' }, production, true)
  t.match(production, [/NAVER_API_URL/], 'plain http off loopback is refused in production')
})

t.test('the emulator: cancel redirects back with access_denied and the state', async (t) => {
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'naver', redirectUri: REDIRECT_URI } })
  const denied = await emulator.deny(start.json().authorizationUrl)
  t.equal(denied.searchParams.get('error'), 'access_denied')
  t.equal(denied.searchParams.get('state'), start.json().state)
  t.notOk(denied.searchParams.has('code'))
  const page = await fetch(start.json().authorizationUrl)
  t.match(await page.text(), /Emulated Naver login/, 'a human gets a sign-in form')
  const badCallback = new URL(start.json().authorizationUrl)
  badCallback.searchParams.set('redirect_uri', 'https://evil.example/callback')
  const refused = await fetch(badCallback, { redirect: 'manual' })
  t.equal(refused.status, 400, 'an unregistered callback gets an error page, not a redirect')
})

t.test('a nickname or photo with characters a profile may not hold counts as missing: the user is asked, and logs in afterwards', async (t) => {
  const cases: [string, NaverAccount, string[]][] = [
    // PostgreSQL cannot store U+0000: before, such a member could never log in (a 500 every time).
    ['U+0000 in the nickname', { id: '1000000101', nickname: 'Nul\u0000', profileImage: 'https://phinf.pstatic.net/n.jpg' }, ['nickname']],
    ['a C1 control in the nickname', { id: '1000000102', nickname: 'C1\u0085name' }, ['nickname']],
    ['a right-to-left override in the nickname', { id: '1000000103', nickname: '\u202eemanlaer' }, ['nickname']],
    ['a zero-width space in the nickname', { id: '1000000104', nickname: 'Zero\u200bWidth' }, ['nickname']],
  ]
  for (const [what, account] of cases) {
    const before = await counts()
    const first = await loginWithNaver(gateway, account)
    t.equal(first.statusCode, 200, `${what}: ${first.body}`)
    t.match(first.json(), { status: 'signup_required', missing: ['nickname'] }, `${what}: the nickname is asked for`)
    t.notOk('nickname' in first.json().profile, `${what}: the provider's nickname is not offered`)
    t.same(await counts(), before, `${what}: no user before signup`)
    const signup = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: first.json().signupToken, nickname: 'Chosen' } })
    t.equal(signup.statusCode, 201, `${what}: signup completes: ${signup.body}`)
    const again = await loginWithNaver(gateway, account)
    t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: signup.json().user.id, nickname: 'Chosen' } }, `${what}: the next login finds the account`)
  }
  const photo = await loginWithNaver(gateway, { id: '1000000105', nickname: 'Photo', profileImage: 'https://phinf.pstatic.net/\u0000.jpg' })
  t.equal(photo.statusCode, 200, photo.body)
  t.match(photo.json(), { status: 'authenticated', user: { nickname: 'Photo' } }, 'a photo URL with U+0000 is dropped, the login goes on')
  t.notOk('photo' in photo.json().user)
})
