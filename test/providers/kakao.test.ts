// Kakao login end to end: the real gateway (Redis, PGlite) against the loopback Kakao
// emulator, which answers like Kakao's documentation says Kakao does — member ids above 2^53 as
// raw JSON numbers, KOE error codes, kapi's -401 with a Bearer challenge, users without
// an email. Every failure path checks that nobody was created.

import * as jose from 'jose'
import * as oidc from 'openid-client'
import t, { type Test } from 'tap'
import type { KakaoAccount, KakaoEndpoint, KakaoFault } from '../../emulators/kakao.js'
import type { KakaoSettings } from '../../providers/kakao.js'
import { providerDefinitions } from '../../providers/registry.js'
import type { ProviderDefinition } from '../../providers/types.js'
import { REDIRECT_URI, startTestGateway, type TestGateway } from '../support/gateway.js'
import { KAKAO_APP, startKakao } from '../support/kakao.js'
import { until } from '../support/until.js'
import { sessionKeys } from '../../verifier/session-keys.js'

const KAKAO = KAKAO_APP
const NATIVE_APP_KEY = 'kakao-native-app-key'
// Through the registry: importing providers/kakao.js first would run into the settings → config → registry cycle.
const kakaoDefinition = providerDefinitions.find((definition) => definition.name === 'kakao') as ProviderDefinition<KakaoSettings>

const { kakao, env: kakaoEnv } = await startKakao({ KAKAO_AUDIENCES: NATIVE_APP_KEY })
t.teardown(() => kakao.stop())
const gateway = await startTestGateway({ database: 'pglite', env: kakaoEnv })
t.teardown(() => gateway.close())

// Member numbers: each test uses fresh ones, so "nobody was created" is about that member.
let nextMember = 4_000_000_000n
const member = (extra: Omit<KakaoAccount, 'id'> = {}): KakaoAccount => ({ id: String(nextMember++), ...extra })

async function start(gw: TestGateway = gateway) {
  const response = await gw.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'kakao', redirectUri: REDIRECT_URI } })
  if (response.statusCode !== 200) throw new Error(`login/start failed: ${response.statusCode} ${response.body}`)
  return response.json() as { authorizationUrl: string; state: string }
}

async function codeFor(authorizationUrl: string, account: KakaoAccount): Promise<string> {
  const redirect = await kakao.authorize(authorizationUrl, account)
  const code = redirect.searchParams.get('code')
  if (!code) throw new Error(`the emulator returned no code: ${redirect.href}`)
  return code
}

const postLogin = (payload: Record<string, unknown>, gw: TestGateway = gateway) =>
  gw.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', ...payload } })

/** The browserless web login: start, consent at Kakao, post the code with the state. */
async function login(account: KakaoAccount, gw: TestGateway = gateway) {
  const { authorizationUrl, state } = await start(gw)
  const code = await codeFor(authorizationUrl, account)
  return postLogin({ code, redirectUri: REDIRECT_URI, state }, gw)
}

async function counts(gw: TestGateway = gateway) {
  return { users: await gw.database.prisma.user.count(), identities: await gw.database.prisma.identity.count() }
}

const identityOf = (id: string, gw: TestGateway = gateway) =>
  gw.database.prisma.identity.findUnique({ where: { provider_subject: { provider: 'kakao', subject: id } }, include: { user: true } })

/** Runs `attempt` and checks that it created no user and no identity. */
async function createsNobody<T>(t: Test, attempt: () => Promise<T>, gw: TestGateway = gateway): Promise<T> {
  const before = await counts(gw)
  const result = await attempt()
  t.same(await counts(gw), before, 'no user and no identity were created')
  return result
}

/** A code login whose next call to `endpoint` gets `fault`: the answer, its duration, and no trace in the database. */
async function loginWithFault(t: Test, endpoint: KakaoEndpoint, fault: KakaoFault, gw: TestGateway = gateway) {
  const account = member({ nickname: 'Faulty' })
  const { authorizationUrl, state } = await start(gw)
  const code = await codeFor(authorizationUrl, account)
  kakao.fail(endpoint, fault)
  const began = Date.now()
  const response = await createsNobody(t, () => postLogin({ code, redirectUri: REDIRECT_URI, state }, gw), gw)
  const elapsed = Date.now() - began
  kakao.clearFaults()
  t.equal(await identityOf(account.id, gw), null, 'the member has no identity')
  return { response, elapsed, account }
}

t.test('a web login: PKCE, nonce and state at Kakao, client_secret_post only, a new member signed up at once', async (t) => {
  const account = member({ nickname: '홍길동', email: 'Gildong@Example.com', thumbnail: 'https://k.kakaocdn.net/img_640x640.jpg' })
  const { authorizationUrl, state } = await start()
  const url = new URL(authorizationUrl)
  t.equal(url.origin, kakao.authUrl)
  t.equal(url.pathname, '/oauth/authorize')
  t.ok(url.searchParams.get('scope')!.split(' ').includes('openid'), 'asks for openid')
  t.equal(url.searchParams.get('code_challenge_method'), 'S256')
  t.ok(url.searchParams.get('nonce'), 'sends a nonce')
  t.equal(url.searchParams.get('state'), state)

  const code = await codeFor(authorizationUrl, account)
  const response = await postLogin({ code, redirectUri: REDIRECT_URI, state })
  t.equal(response.statusCode, 200, { body: response.body })
  t.match(response.json(), {
    status: 'authenticated',
    isNewUser: true,
    user: { nickname: '홍길동', email: 'gildong@example.com', photo: 'https://k.kakaocdn.net/img_640x640.jpg' },
  })

  const exchange = kakao.requests.filter((r) => r.endpoint === 'token').at(-1)!
  t.equal(exchange.authorization, undefined, 'no Authorization header at the token endpoint (Basic fails at Kakao)')
  t.equal(exchange.form?.client_id, KAKAO.clientId)
  t.equal(exchange.form?.client_secret, KAKAO.clientSecret, 'the secret travels in the body')
  t.match(exchange.form?.code_verifier, /^[A-Za-z0-9_-]{43,128}$/, 'the PKCE verifier is sent')
  t.equal(exchange.form?.redirect_uri, REDIRECT_URI)
  t.ok(kakao.requests.some((r) => r.endpoint === 'me' && r.authorization?.startsWith('Bearer ')), 'the profile came from /v2/user/me')

  const identity = await identityOf(account.id)
  t.equal(identity?.user.publicId, response.json().user.id, 'the identity is keyed by the member number')

  const again = await login(account)
  t.equal(again.statusCode, 200, { body: again.body })
  t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: response.json().user.id } })
})

t.test('a member without an email signs up without one', async (t) => {
  const account = member({ nickname: 'Phone Only' })
  const response = await login(account)
  t.equal(response.statusCode, 200, { body: response.body })
  t.match(response.json(), { status: 'authenticated', isNewUser: true, user: { nickname: 'Phone Only' } })
  t.notOk('email' in response.json().user, 'no email')
})

t.test('only an email Kakao vouches for is used, and only https photos', async (t) => {
  const cases: [string, KakaoAccount][] = [
    ['unverified email', member({ nickname: 'Unverified', email: 'unverified@example.com', emailVerified: false })],
    ['invalid email', member({ nickname: 'Invalid', email: 'invalid@example.com', emailValid: false })],
    ['email consent declined', member({ nickname: 'Private', email: 'private@example.com', declines: ['account_email'] })],
  ]
  for (const [what, account] of cases) {
    const response = await login(account)
    t.equal(response.statusCode, 200, { body: response.body })
    t.equal(response.json().status, 'authenticated', what)
    t.equal(response.json().user.email, undefined, `${what}: no email`)
    t.equal((await identityOf(account.id))?.user.email, null, `${what}: none stored`)
  }
  const httpPhoto = await login(member({ nickname: 'Http', thumbnail: 'http://k.kakaocdn.net/img_110x110.jpg' }))
  t.equal(httpPhoto.json().user.photo, undefined, 'an http photo is dropped')
  const defaultImage = await login(member({ nickname: 'Default' }))
  t.equal(defaultImage.json().user.photo, undefined, "Kakao's placeholder image is not a photo")
})

t.test('member ids above 2^53 stay exact: ids that differ only past the 53rd bit are two people', async (t) => {
  const low = { id: '9007199254740992', nickname: 'Low' }
  const high = { id: '9007199254740993', nickname: 'High' }
  const docSample = { id: '1376016924429759228', nickname: 'Doc Sample' }
  t.equal(Number(low.id), Number(high.id), 'JSON.parse would make them one number')

  const first = await login(low)
  const second = await login(high)
  const third = await login(docSample)
  for (const response of [first, second, third]) t.equal(response.statusCode, 200, { body: response.body })
  t.not(first.json().user.id, second.json().user.id, 'two users')
  const subjects = await gateway.database.prisma.identity.findMany({
    where: { provider: 'kakao', subject: { in: [low.id, high.id, docSample.id] } },
    select: { subject: true },
  })
  t.same(subjects.map((s) => s.subject).sort(), [docSample.id, low.id, high.id].sort(), 'subjects stored digit for digit')

  // The native SDK paths name the same member the same way.
  const sdk = await kakao.sdkLogin(high, { clientId: NATIVE_APP_KEY })
  const byAccessToken = await postLogin({ accessToken: sdk.accessToken })
  t.equal(byAccessToken.statusCode, 200, { body: byAccessToken.body })
  t.match(byAccessToken.json(), { isNewUser: false, user: { id: second.json().user.id } }, 'access token: the same user')
  const byIdToken = await postLogin({ idToken: sdk.idToken })
  t.equal(byIdToken.statusCode, 200, { body: byIdToken.body })
  t.match(byIdToken.json(), { isNewUser: false, user: { id: second.json().user.id } }, 'ID token: the same user')
})

t.test('a used code is refused with 401 invalid_grant', async (t) => {
  await t.test('redeemed by the gateway, posted again under a new login', async (t) => {
    const account = member({ nickname: 'Twice' })
    const { authorizationUrl, state } = await start()
    const code = await codeFor(authorizationUrl, account)
    t.equal((await postLogin({ code, redirectUri: REDIRECT_URI, state })).statusCode, 200)
    const retry = await start()
    const reused = await createsNobody(t, () => postLogin({ code, redirectUri: REDIRECT_URI, state: retry.state }))
    t.equal(reused.statusCode, 401, { body: reused.body })
    t.equal(reused.json().error, 'invalid_grant')
    t.notMatch(reused.json().message, /KOE|authorization code not found/, 'the provider body is not echoed')
  })

  await t.test('redeemed by someone else first: the member never gets an account', async (t) => {
    const account = member({ nickname: 'Intercepted' })
    const codeVerifier = oidc.randomPKCECodeVerifier()
    const nonce = oidc.randomNonce()
    const authorizationUrl = new URL('/oauth/authorize', kakao.authUrl)
    authorizationUrl.search = new URLSearchParams({
      client_id: KAKAO.clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid profile_nickname',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      nonce,
    }).toString()
    const code = await codeFor(authorizationUrl.href, account)
    const stolen = await fetch(`${kakao.authUrl}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'authorization_code', client_id: KAKAO.clientId, client_secret: KAKAO.clientSecret, redirect_uri: REDIRECT_URI, code, code_verifier: codeVerifier }),
    })
    t.equal(stolen.status, 200, 'the first redemption succeeds')
    const response = await createsNobody(t, () => postLogin({ code, redirectUri: REDIRECT_URI, codeVerifier, nonce }))
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
    t.equal(await identityOf(account.id), null)
  })
})

t.test('the emulator refuses Basic client authentication, as Kakao does', async (t) => {
  const response = await fetch(`${kakao.authUrl}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${KAKAO.clientId}:${KAKAO.clientSecret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT_URI }),
  })
  t.equal(response.status, 401)
  t.match(await response.json(), { error: 'invalid_client', error_code: 'KOE010' })
})

t.test('a client secret Kakao no longer accepts is 502 provider_error, not a user error', async (t) => {
  kakao.setClientSecret('re-issued-in-the-console')
  t.teardown(() => kakao.setClientSecret(KAKAO.clientSecret))
  const { authorizationUrl, state } = await start()
  const code = await codeFor(authorizationUrl, member({ nickname: 'Blocked' }))
  const response = await createsNobody(t, () => postLogin({ code, redirectUri: REDIRECT_URI, state }))
  t.equal(response.statusCode, 502, { body: response.body })
  t.equal(response.json().error, 'provider_error')
  t.notMatch(response.body, /KAKAO_CLIENT_SECRET|KOE010|re-issued/, 'the operator hint stays in the log')

  // What the operator reads in the log: which variable to check.
  const adapter = kakaoDefinition.create(gateway.config.providers.kakao!.settings as KakaoSettings, { httpTimeoutSeconds: 1, allowInsecureLoopback: true })
  await t.rejects(adapter.exchangeCode({ code: 'any', redirectUri: REDIRECT_URI }), { code: 'provider_error', detail: /KAKAO_CLIENT_SECRET/ })
})

t.test('an app with its client secret turned off: no secret is sent, and logins work (development only)', async (t) => {
  kakao.setClientSecret(undefined)
  t.teardown(() => kakao.setClientSecret(KAKAO.clientSecret))
  const problems: string[] = []
  const { KAKAO_CLIENT_SECRET: _secret, ...withoutSecret } = kakaoEnv
  const settings = kakaoDefinition.readSettings(withoutSecret, problems, false)!
  t.same(problems, [], 'allowed in development')
  const adapter = kakaoDefinition.create(settings, { httpTimeoutSeconds: 1, allowInsecureLoopback: true })
  const codeVerifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const authorizationUrl = await adapter.buildAuthorizationUrl({
    redirectUri: REDIRECT_URI,
    state: oidc.randomState(),
    nonce,
    codeChallenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
  })
  const account = member({ nickname: 'Secretless' })
  const profile = await adapter.exchangeCode({ code: await codeFor(authorizationUrl.href, account), redirectUri: REDIRECT_URI, codeVerifier, nonce })
  t.equal(profile.subject, account.id)
  const exchange = kakao.requests.filter((r) => r.endpoint === 'token').at(-1)!
  t.notOk(exchange.form && 'client_secret' in exchange.form, 'no client_secret parameter')
  t.equal(exchange.authorization, undefined)

  kakaoDefinition.readSettings(withoutSecret, problems, true)
  t.match(problems, [/KAKAO_CLIENT_SECRET is required in production/], 'refused in production')
})

t.test('configuration problems are reported one line each', async (t) => {
  const problems: string[] = []
  const settings = kakaoDefinition.readSettings(
    { KAKAO_CLIENT_ID: 'key', KAKAO_CLIENT_SECRET: 's', KAKAO_APP_IDS: '123,app-one', KAKAO_AUTH_URL: 'http://kauth.example', KAKAO_SCOPE: 'profile_nickname' },
    problems,
    true,
  )
  t.match(problems, [/KAKAO_AUTH_URL.*https/, /KAKAO_APP_IDS: "app-one"/, /KAKAO_SCOPE must include openid/])
  t.equal(settings?.issuer, 'https://kauth.kakao.com')
  t.equal(kakaoDefinition.readSettings({ KAKAO_CLIENT_SECRET: 's' }, problems, true), undefined, 'no KAKAO_CLIENT_ID: disabled')
})

t.test('a user who cancels at Kakao comes back with access_denied and no code', async (t) => {
  const { authorizationUrl, state } = await start()
  const redirect = await kakao.deny(authorizationUrl)
  t.equal(redirect.searchParams.get('error'), 'access_denied')
  t.equal(redirect.searchParams.get('state'), state)
  t.notOk(redirect.searchParams.has('code'))
})

t.test('Kakao token-endpoint rate limit (KOE237) is 502', async (t) => {
  const { response } = await loginWithFault(t, 'token', {
    kind: 'status',
    status: 400,
    body: { error: 'invalid_request', error_description: 'token request limit exceeded', error_code: 'KOE237' },
  })
  t.equal(response.statusCode, 502, { body: response.body })
  t.equal(response.json().error, 'provider_error')
})

t.test('Kakao token-endpoint errors map to the contract', async (t) => {
  const cases: [string, number, Record<string, unknown>, number][] = [
    ['redirect mismatch (KOE303)', 400, { error: 'invalid_grant', error_description: 'Redirect URI mismatch.', error_code: 'KOE303' }, 401],
    ['expired code (KOE320)', 400, { error: 'invalid_grant', error_description: 'authorization code not found for code=x', error_code: 'KOE320' }, 401],
    ['unknown app key (KOE101)', 401, { error: 'invalid_client', error_description: 'Not exist client_id []', error_code: 'KOE101' }, 502],
    ['invalid_client without a code', 401, { error: 'invalid_client', error_description: 'Bad client credentials' }, 502],
    ['server_error', 500, { error: 'server_error', error_description: 'internal error' }, 502],
  ]
  for (const [what, status, body, expected] of cases) {
    const { response } = await loginWithFault(t, 'token', { kind: 'status', status, body })
    t.equal(response.statusCode, expected, `${what}: ${response.body}`)
    t.equal(response.json().error, expected === 401 ? 'invalid_grant' : 'provider_error', what)
  }
})

t.test('a profile call refused for missing consent (-402, 403) is 502', async (t) => {
  const { response } = await loginWithFault(t, 'me', { kind: 'status', status: 403, body: { msg: 'insufficient scopes.', code: -402 } })
  t.equal(response.statusCode, 502, { body: response.body })
  t.equal(response.json().error, 'provider_error')
})

t.test('a token Kakao no longer knows (-401 with a Bearer challenge) is 401: the client must log in again', async (t) => {
  await t.test('during a code login', async (t) => {
    const { response } = await loginWithFault(t, 'me', {
      kind: 'status',
      status: 401,
      headers: { 'www-authenticate': 'Bearer error=invalid_token' },
      body: { msg: 'this access token does not exist', code: -401 },
    })
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
  })

  await t.test('a native access token after the user unlinked the app', async (t) => {
    const account = member({ nickname: 'Unlinker' })
    const sdk = await kakao.sdkLogin(account)
    const first = await postLogin({ accessToken: sdk.accessToken })
    t.equal(first.statusCode, 200, { body: first.body })
    kakao.revokeConsent(account.id)
    const revoked = await createsNobody(t, () => postLogin({ accessToken: sdk.accessToken }))
    t.equal(revoked.statusCode, 401, { body: revoked.body })
    t.equal(revoked.json().error, 'invalid_grant')
    t.notOk(revoked.json().accessToken, 'no session')
  })
})

t.test('Kakao down or closing connections is 502; a hang is 504 within the timeout', async (t) => {
  // The timeouts on a gateway of their own: with one second for every test in this file, a
  // first login that is merely slow on a busy machine would time out.
  const impatient = await startTestGateway({ database: 'pglite', env: { ...kakaoEnv, PROVIDER_HTTP_TIMEOUT: '1' } })
  t.teardown(() => impatient.close())
  await t.test('connection refused', async (t) => {
    const account = member({ nickname: 'Offline' })
    const { authorizationUrl, state } = await start()
    const code = await codeFor(authorizationUrl, account)
    await kakao.down()
    t.teardown(() => kakao.up())
    const began = Date.now()
    const response = await createsNobody(t, () => postLogin({ code, redirectUri: REDIRECT_URI, state }))
    t.equal(response.statusCode, 502, { body: response.body })
    t.equal(response.json().error, 'provider_error')
    t.ok(Date.now() - began < 3000, 'answered at once')
    await kakao.up()
    const recovered = await login(account)
    t.equal(recovered.statusCode, 200, 'logins work again once Kakao is back')
  })

  for (const endpoint of ['token', 'me'] as const) {
    await t.test(`connection closed by ${endpoint}`, async (t) => {
      const { response } = await loginWithFault(t, endpoint, { kind: 'closed' })
      t.equal(response.statusCode, 502, { body: response.body })
    })
    await t.test(`${endpoint} too slow`, async (t) => {
      const { response, elapsed } = await loginWithFault(t, endpoint, { kind: 'slow', delayMs: 5000 }, impatient)
      t.equal(response.statusCode, 504, { body: response.body })
      t.equal(response.json().error, 'provider_timeout')
      t.ok(elapsed < 3000, `gave up after PROVIDER_HTTP_TIMEOUT=1 (${elapsed} ms)`)
    })
  }

  await t.test('access_token_info hangs', async (t) => {
    const sdk = await kakao.sdkLogin(member({ nickname: 'Hanging' }))
    kakao.fail('tokenInfo', { kind: 'hang' })
    t.teardown(() => kakao.clearFaults())
    const began = Date.now()
    const response = await createsNobody(t, () => postLogin({ accessToken: sdk.accessToken }, impatient), impatient)
    t.equal(response.statusCode, 504, { body: response.body })
    t.ok(Date.now() - began < 3000, 'bounded')
  })
})

t.test('malformed and oversized Kakao answers are 502 and create nobody', async (t) => {
  const faults: [KakaoEndpoint, KakaoFault][] = [
    ['token', { kind: 'html' }],
    ['token', { kind: 'malformed' }],
    ['token', { kind: 'missing-fields' }],
    ['token', { kind: 'oversized' }],
    ['token', { kind: 'status', status: 500, body: 'Internal Server Error' }],
    ['me', { kind: 'html' }],
    ['me', { kind: 'malformed' }],
    ['me', { kind: 'missing-fields' }],
    ['me', { kind: 'oversized' }],
    ['me', { kind: 'status', status: 200, body: '{"id":1.5e300,"kakao_account":{}}' }],
    ['me', { kind: 'status', status: 200, body: '{"id":"not-a-number"}' }],
  ]
  for (const [endpoint, fault] of faults) {
    const what = `${endpoint}: ${fault.kind}${fault.kind === 'status' ? ` ${fault.status} ${String(fault.body)}` : ''}`
    await t.test(what, async (t) => {
      const { response, account } = await loginWithFault(t, endpoint, fault)
      t.equal(response.statusCode, 502, { body: response.body })
      t.equal(response.json().error, 'provider_error')
      const recovered = await login(account)
      t.equal(recovered.statusCode, 200, 'the same member logs in once Kakao answers normally')
    })
  }

  await t.test('an ID token that names another member than /v2/user/me is refused', async (t) => {
    // The token endpoint answers for one member, the profile API (oversized padding aside) for another.
    const account = member({ nickname: 'Mixed' })
    const other = member({ nickname: 'Other' })
    const otherTokens = await kakao.sdkLogin(other)
    const { authorizationUrl, state } = await start()
    const code = await codeFor(authorizationUrl, account)
    const meForOther = await fetch(`${kakao.apiUrl}/v2/user/me`, { headers: { authorization: `Bearer ${otherTokens.accessToken}` } })
    kakao.fail('me', { kind: 'status', status: 200, body: await meForOther.text() })
    const response = await createsNobody(t, () => postLogin({ code, redirectUri: REDIRECT_URI, state }))
    t.equal(response.statusCode, 502, { body: response.body })
    t.equal(await identityOf(other.id), null, 'the other member got nothing either')
  })
})

t.test('a returning member is known by the ID token alone; nothing is decided before its signature is checked', async (t) => {
  await t.test("a new member's profile is read; a returning member's login asks Kakao for the token only", async (t) => {
    const account = member({ nickname: 'Returning' })
    const seenFirst = kakao.requests.length
    const first = await login(account)
    t.equal(first.statusCode, 200, { body: first.body })
    t.same(kakao.requests.slice(seenFirst).map((request) => request.endpoint).filter((endpoint) => endpoint !== 'authorize' && endpoint !== 'consent'), ['token', 'me'], "the new member's profile was read")
    const userId = first.json().user.id as string
    const { authorizationUrl, state } = await start()
    const code = await codeFor(authorizationUrl, account)
    // The profile API would fail now: a returning member's login must not need it.
    kakao.fail('me', { kind: 'status', status: 500, body: 'Internal Server Error' })
    t.teardown(() => kakao.clearFaults())
    const seen = kakao.requests.length
    const again = await postLogin({ code, redirectUri: REDIRECT_URI, state })
    t.equal(again.statusCode, 200, { body: again.body })
    t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: userId, nickname: 'Returning' } })
    t.same(kakao.requests.slice(seen).map((request) => request.endpoint), ['token'], 'Kakao was asked for the token, not the profile')
  })

  await t.test('a returning member whose ID token is not signed by Kakao starts no session', async (t) => {
    const account = member({ nickname: 'Forged' })
    const first = await login(account)
    t.equal(first.statusCode, 200, { body: first.body })
    const userId = first.json().user.id as string
    const { authorizationUrl, state } = await start()
    const code = await codeFor(authorizationUrl, account)
    kakao.tamperNextIdToken((claims) => claims, { forged: true })
    const response = await postLogin({ code, redirectUri: REDIRECT_URI, state })
    t.equal(response.statusCode, 401, { body: response.body })
    t.match(response.json(), { error: 'invalid_grant', message: /ID token/ })
    t.notOk(response.json().accessToken, 'no token')
    t.equal(await gateway.redis.zcard(sessionKeys.index(userId)), 1, 'only the first login holds a session')
    t.equal(await gateway.database.prisma.auditEvent.count({ where: { userId, action: 'session.started' } }), 1, 'and only it was audited')
  })

  await t.test("an account deleted while its login waits on Kakao's key set: that login starts no session, and the account stays gone", async (t) => {
    // No job delivery: Kakao must still know the member when its keys are sent.
    const quiet = await startTestGateway({ database: 'pglite', env: { ...kakaoEnv, JOB_CONCURRENCY: '0' } })
    t.teardown(() => quiet.close())
    const account = member({ nickname: 'Leaving' })
    // Signed up with the native SDK's access token: this gateway has not fetched Kakao's key set yet.
    const first = await postLogin({ accessToken: (await kakao.sdkLogin(account, { clientId: NATIVE_APP_KEY })).accessToken }, quiet)
    t.equal(first.statusCode, 200, { body: first.body })
    const { accessToken, user } = first.json() as { accessToken: string; user: { id: string } }
    const { authorizationUrl, state } = await start(quiet)
    const code = await codeFor(authorizationUrl, account)
    kakao.fail('jwks', { kind: 'slow', delayMs: 1500 })
    t.teardown(() => kakao.clearFaults())
    const keySetCalls = () => kakao.requests.filter((request) => request.endpoint === 'jwks').length
    const asked = keySetCalls()
    const late = postLogin({ code, redirectUri: REDIRECT_URI, state }, quiet)
    // The account lookup starts with the key set's fetch and is done long before the keys arrive.
    await until("the key set's fetch", () => keySetCalls() > asked)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const deleted = await quiet.app.inject({ method: 'DELETE', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } })
    t.equal(deleted.statusCode, 204, { body: deleted.body })
    const response = await late
    t.equal(response.statusCode, 401, { body: response.body })
    t.match(response.json(), { error: 'invalid_grant', message: /account was deleted/ })
    t.notOk(response.json().accessToken, 'no token')
    t.equal(await quiet.redis.zcard(sessionKeys.index(user.id)), 0, 'no session of the deleted account')
    t.equal(await quiet.database.prisma.user.count({ where: { publicId: user.id } }), 0, 'the account is still deleted')
    const rows = await quiet.database.prisma.auditEvent.findMany({ where: { userId: user.id, action: 'session.started' }, orderBy: { id: 'asc' } })
    t.same(rows.map((row) => [row.outcome, row.ip]), [['success', null], ['failed', null]], "the late login's row says it failed, and keeps no address")
    const again = await login(account, quiet)
    t.equal(again.statusCode, 200, { body: again.body })
    t.not(again.json().user.id, user.id, 'logging in again makes a new account')
  })
})

t.test('native SDK ID tokens', async (t) => {
  await t.test('a genuine one for the native app key is accepted, once', async (t) => {
    const account = member({ nickname: 'Native', email: 'native@example.com' })
    const nonce = oidc.randomNonce()
    const { idToken } = await kakao.sdkLogin(account, { clientId: NATIVE_APP_KEY, nonce })
    const response = await postLogin({ idToken, nonce })
    t.equal(response.statusCode, 200, { body: response.body })
    t.match(response.json(), { status: 'authenticated', isNewUser: true, user: { nickname: 'Native', email: 'native@example.com' } })
    t.equal((await identityOf(account.id))?.subject, account.id)
    const replay = await postLogin({ idToken, nonce })
    t.equal(replay.statusCode, 401, 'not twice')
  })

  const now = Math.floor(Date.now() / 1000)
  const claims = (account: KakaoAccount) => ({ iss: kakao.authUrl, aud: NATIVE_APP_KEY, sub: account.id, nickname: account.nickname, iat: now, exp: now + 3600 })
  const refused: [string, () => Promise<{ idToken: string; nonce?: string; id: string }>][] = [
    ['issued to another app key', async () => {
      const account = member({ nickname: 'Foreign' })
      return { idToken: (await kakao.sdkLogin(account, { clientId: 'someone-elses-app-key' })).idToken, id: account.id }
    }],
    ['expired', async () => {
      const account = member({ nickname: 'Expired' })
      return { idToken: await kakao.signIdToken({ ...claims(account), iat: now - 7200, exp: now - 600 }), id: account.id }
    }],
    ['with another nonce', async () => {
      const account = member({ nickname: 'Nonce' })
      return { idToken: (await kakao.sdkLogin(account, { clientId: NATIVE_APP_KEY, nonce: 'the-apps-nonce' })).idToken, nonce: 'a-different-nonce', id: account.id }
    }],
    ['alg none', async () => {
      const account = member({ nickname: 'Unsigned' })
      const encode = (value: unknown) => jose.base64url.encode(JSON.stringify(value))
      return { idToken: `${encode({ alg: 'none', typ: 'JWT' })}.${encode(claims(account))}.`, id: account.id }
    }],
    ['signed by another key', async () => {
      const account = member({ nickname: 'Forged' })
      const { privateKey } = await jose.generateKeyPair('RS256')
      const idToken = await new jose.SignJWT(claims(account)).setProtectedHeader({ alg: 'RS256', kid: 'attacker' }).sign(privateKey)
      return { idToken, id: account.id }
    }],
    ['from another issuer', async () => {
      const account = member({ nickname: 'Elsewhere' })
      return { idToken: await kakao.signIdToken({ ...claims(account), iss: 'https://kauth.kakao.com' }), id: account.id }
    }],
  ]
  for (const [what, make] of refused) {
    await t.test(`one ${what} is 401`, async (t) => {
      const { idToken, nonce, id } = await make()
      const response = await createsNobody(t, () => postLogin({ idToken, ...(nonce ? { nonce } : {}) }))
      t.equal(response.statusCode, 401, { body: response.body })
      t.equal(response.json().error, 'invalid_grant')
      t.equal(await identityOf(id), null)
    })
  }
})

t.test('native SDK access tokens', async (t) => {
  await t.test('one of our app is accepted, and /v2/user/me is asked only after access_token_info', async (t) => {
    const account = member({ nickname: 'Sdk', email: 'sdk@example.com' })
    const { accessToken } = await kakao.sdkLogin(account, { clientId: NATIVE_APP_KEY })
    const seen = kakao.requests.length
    const response = await postLogin({ accessToken })
    t.equal(response.statusCode, 200, { body: response.body })
    t.match(response.json(), { status: 'authenticated', isNewUser: true, user: { nickname: 'Sdk', email: 'sdk@example.com' } })
    t.same(kakao.requests.slice(seen).map((r) => r.endpoint), ['tokenInfo', 'me'])
    t.equal((await identityOf(account.id))?.subject, account.id)

    // Back with a new token: access_token_info names the member, whose profile is not read again.
    const returning = await kakao.sdkLogin(account, { clientId: NATIVE_APP_KEY })
    kakao.fail('me', { kind: 'status', status: 500, body: 'Internal Server Error' })
    t.teardown(() => kakao.clearFaults())
    const seenAgain = kakao.requests.length
    const again = await postLogin({ accessToken: returning.accessToken })
    t.equal(again.statusCode, 200, { body: again.body })
    t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: response.json().user.id, nickname: 'Sdk' } })
    t.same(kakao.requests.slice(seenAgain).map((r) => r.endpoint), ['tokenInfo'], 'the returning member: access_token_info only')
  })

  await t.test('one issued to another Kakao app is 401, and its profile is never read', async (t) => {
    const account = member({ nickname: 'Other App' })
    const { accessToken } = await kakao.sdkLogin(account, { appId: 7654321 })
    const seen = kakao.requests.length
    const response = await createsNobody(t, () => postLogin({ accessToken }))
    t.equal(response.statusCode, 401, { body: response.body })
    t.equal(response.json().error, 'invalid_grant')
    t.same(kakao.requests.slice(seen).map((r) => r.endpoint), ['tokenInfo'])
  })

  await t.test('unknown and malformed tokens are 401', async (t) => {
    for (const accessToken of ['unknown-token-value', 'bad token\r\nx: y']) {
      const response = await createsNobody(t, () => postLogin({ accessToken }))
      t.equal(response.statusCode, 401, { body: response.body })
      t.equal(response.json().error, 'invalid_grant')
    }
  })

  await t.test('access_token_info without the app id is 502', async (t) => {
    const { accessToken } = await kakao.sdkLogin(member({ nickname: 'No App' }))
    kakao.fail('tokenInfo', { kind: 'missing-fields' })
    const response = await createsNobody(t, () => postLogin({ accessToken }))
    t.equal(response.statusCode, 502, { body: response.body })
  })
})

t.test('a gateway that requires an email, and has no KAKAO_APP_IDS', async (t) => {
  const { KAKAO_APP_IDS: _appIds, ...withoutAppIds } = kakaoEnv
  const strict = await startTestGateway({ database: 'pglite', env: { ...withoutAppIds, SIGNUP_REQUIRED_FIELDS: 'nickname,email' } })
  t.teardown(() => strict.close())

  await t.test('a member without an email must complete signup, and no user exists yet', async (t) => {
    const response = await createsNobody(t, () => login(member({ nickname: 'No Mail' }), strict), strict)
    t.equal(response.statusCode, 200, { body: response.body })
    t.match(response.json(), { status: 'signup_required', missing: ['email'], profile: { nickname: 'No Mail' } })
  })

  await t.test('an unverified email does not count as one', async (t) => {
    const response = await login(member({ nickname: 'Unverified', email: 'u@example.com', emailVerified: false }), strict)
    t.match(response.json(), { status: 'signup_required', missing: ['email'] })
    t.equal(response.json().profile.email, undefined)
  })

  await t.test('a member with a verified email gets an account at once', async (t) => {
    const response = await login(member({ nickname: 'Mail', email: 'mail@example.com' }), strict)
    t.match(response.json(), { status: 'authenticated', isNewUser: true, user: { email: 'mail@example.com' } })
  })

  await t.test('access tokens are refused without asking Kakao (fail closed)', async (t) => {
    const { accessToken } = await kakao.sdkLogin(member({ nickname: 'Closed' }))
    const seen = kakao.requests.length
    const response = await createsNobody(t, () => postLogin({ accessToken }, strict), strict)
    t.equal(response.statusCode, 400, { body: response.body })
    t.equal(response.json().error, 'invalid_request')
    t.match(response.json().message, /does not accept Kakao access tokens/)
    t.equal(kakao.requests.length, seen, 'Kakao was not asked')
  })
})

t.test('a profile with characters it may not hold: the field counts as missing, the member is asked and logs in afterwards', async (t) => {
  const cases: [string, KakaoAccount][] = [
    // PostgreSQL cannot store U+0000: before, such a member could never log in (a 500 every time).
    ['U+0000 in the nickname', member({ nickname: 'Nul\u0000', email: 'nul@example.com' })],
    ['a C1 control in the nickname', member({ nickname: 'C1\u009bname' })],
    ['a left-to-right isolate in the nickname', member({ nickname: '\u2066name\u2069' })],
    ['a byte order mark in the nickname', member({ nickname: 'Bo\ufeffm' })],
  ]
  for (const [what, account] of cases) {
    const first = await createsNobody(t, () => login(account))
    t.equal(first.statusCode, 200, `${what}: ${first.body}`)
    t.match(first.json(), { status: 'signup_required', missing: ['nickname'] }, `${what}: the nickname is asked for`)
    t.notOk('nickname' in first.json().profile, `${what}: the provider's nickname is not offered`)
    const signup = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: first.json().signupToken, nickname: 'Chosen' } })
    t.equal(signup.statusCode, 201, `${what}: signup completes: ${signup.body}`)
    const again = await login(account)
    t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: signup.json().user.id } }, `${what}: the next login finds the account`)
  }
  await t.test('the same rule for a native ID token, and for the email', async (t) => {
    const account = member({ nickname: 'Nul\u0000', email: 'mail\u0000@example.com' })
    const { idToken } = await kakao.sdkLogin(account, { clientId: NATIVE_APP_KEY })
    const response = await createsNobody(t, () => postLogin({ idToken }))
    t.match(response.json(), { status: 'signup_required', missing: ['nickname'] }, { body: response.body })
    t.notOk('email' in response.json().profile)
    t.notOk('nickname' in response.json().profile)
  })
})
