// Hostile and malformed input (RFC 9700 §4; ASVS 5.0 input and session rules): every such request
// gets a 4xx JSON answer `{ error, message }` without a stack or a Prisma word in it, and
// leaves no trace: no user or identity row, no Redis key created or consumed, and no call
// to the provider where none was needed. Each refusal is paired with a control showing the
// same request, made well, is accepted, so a refusal proves the protection, not a typo.

import { randomBytes } from 'node:crypto'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { refreshCookieFor } from '../src/http/browser.js'
import { APP_ORIGIN, REDIRECT_URI, loginWithGoogle, startTestGateway } from './support/gateway.js'
import { countGoogleRequests } from './support/provider-requests.js'

type Tap = Pick<typeof t, 'equal' | 'not' | 'match' | 'notMatch' | 'same' | 'ok' | 'type'>

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const prisma = gateway.database.prisma

const FOREIGN_ORIGIN = 'https://evil.example'
const COOKIE = refreshCookieFor(gateway.config).name
const JSON_HEADERS = { 'content-type': 'application/json' }
const VERIFIER = 'v'.repeat(43)

// Every request the (emulated) provider receives from the gateway is counted; none shows a
// refusal came before any call.
const google = countGoogleRequests(t, gateway.google.issuer)

/** Everything a bad request could have changed (the rate limiter counting it is intended). */
async function footprint() {
  const redisKeys = (await gateway.redis.keys('*')).filter((key) => !key.startsWith('gw:rate:')).sort()
  return {
    users: await prisma.user.count(),
    identities: await prisma.identity.count(),
    redisKeyCount: redisKeys.length,
    redisKeys,
    providerCalls: google.fromGateway,
  }
}

function assertErrorBody(t: Tap, what: string, response: LightMyRequestResponse): void {
  t.ok(response.statusCode >= 400 && response.statusCode < 500, `${what}: a 4xx, never a 5xx (got ${response.statusCode})`)
  t.match(String(response.headers['content-type']), /^application\/json/, `${what}: a JSON answer`)
  let body: unknown
  try {
    body = response.json()
  } catch {
    body = undefined
  }
  t.type(body, 'object', `${what}: the body parses as JSON`)
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown }
  t.type(error, 'string', `${what}: error is a string`)
  t.type(message, 'string', `${what}: message is a string`)
  t.ok(typeof error === 'string' && error.length > 0 && typeof message === 'string' && message.length > 0, `${what}: error and message are not empty`)
  t.same(Object.keys((body ?? {}) as object).sort(), ['error', 'message'], `${what}: exactly { error, message }`)
  t.notMatch(response.body, /\bat [^\s]+ \(|\n\s+at |\.ts:\d+|node_modules/, `${what}: no stack trace in the answer`)
  t.notMatch(response.body, /prisma/i, `${what}: no Prisma detail in the answer`)
}

interface Refusal {
  status: number | number[]
  error?: string | RegExp
  /** The message must say this (e.g. name the offending field). */
  message?: RegExp
  /** A provider call is legitimate here (the provider itself must judge the credential). */
  providerCallAllowed?: boolean
}

/** Sends a request that must be refused, and checks the answer and that nothing changed. */
async function refused(t: Tap, what: string, request: InjectOptions, expected: Refusal): Promise<LightMyRequestResponse> {
  const before = await footprint()
  const response = await app.inject(request)
  const statuses = Array.isArray(expected.status) ? expected.status : [expected.status]
  t.ok(statuses.includes(response.statusCode), `${what}: status ${statuses.join(' or ')} (got ${response.statusCode} ${response.body.slice(0, 300)})`)
  assertErrorBody(t, what, response)
  const body = (() => {
    try {
      return response.json() as { error?: string; message?: string }
    } catch {
      return {}
    }
  })()
  if (expected.error !== undefined) {
    if (typeof expected.error === 'string') t.equal(body.error, expected.error, `${what}: error code`)
    else t.match(body.error ?? '', expected.error, `${what}: error code`)
  }
  if (expected.message) t.match(body.message ?? '', expected.message, `${what}: the message says what is wrong`)
  const after = await footprint()
  if (expected.providerCallAllowed) after.providerCalls = before.providerCalls
  t.same(after, before, `${what}: nothing written or consumed, no provider call`)
  return response
}

/** A login started with the gateway, played at Google: an unused code and state. */
async function freshCode(account: { sub: string; email?: string; name?: string }) {
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  if (start.statusCode !== 200) throw new Error(`login/start failed: ${start.body}`)
  const { authorizationUrl, state } = start.json() as { authorizationUrl: string; state: string }
  const code = await gateway.codeFor(authorizationUrl, account)
  return { code, state }
}

async function freshState(): Promise<string> {
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  if (start.statusCode !== 200) throw new Error(`login/start failed: ${start.body}`)
  return (start.json() as { state: string }).state
}

// A registered user with a native (body) session and a browser (cookie) session.
const alice = { sub: 'bad-input-alice', email: 'alice@example.com', name: 'Alice' }
const nativeLogin = await loginWithGoogle(gateway, alice)
if (nativeLogin.statusCode !== 200 || nativeLogin.json().status !== 'authenticated') throw new Error(`login failed: ${nativeLogin.body}`)
const native = nativeLogin.json() as { accessToken: string; refreshToken: string }
const browserLogin = await loginWithGoogle(gateway, alice, { origin: APP_ORIGIN })
const browserCookie = browserLogin.cookies.find((cookie) => cookie.name === COOKIE)
if (browserLogin.statusCode !== 200 || !browserCookie) throw new Error(`browser login failed: ${browserLogin.body}`)

const me = (accessToken: string) => app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } })

t.test('the controls: the provider counter and the sessions work', async (t) => {
  t.equal(COOKIE, '__Secure-refresh_token', 'the https gateway names its cookie __Secure-')
  const before = google.fromGateway
  await freshCode({ sub: 'bad-input-counter', name: 'Counter' }).then(({ code, state }) =>
    app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state } }),
  )
  t.ok(google.fromGateway > before, 'a real login is seen calling the provider, so a zero count means no call')
  t.equal((await me(native.accessToken)).statusCode, 200, 'the native session works')
})

t.test('malformed JSON on every JSON endpoint → 400 invalid_request', async (t) => {
  const broken = ['{"provider": "google",', '{provider: "google"}', "{'provider':'google'}", '{"a":1}}', 'nul', '\u0000']
  for (const url of ['/auth/login', '/auth/login/start', '/auth/signup', '/auth/token', '/auth/logout']) {
    for (const payload of broken) {
      await refused(t, `${url} ${JSON.stringify(payload)}`, { method: 'POST', url, headers: JSON_HEADERS, payload }, { status: 400, error: 'invalid_request' })
    }
    await refused(t, `${url} empty JSON body`, { method: 'POST', url, headers: JSON_HEADERS, payload: '' }, { status: 400, error: 'invalid_request' })
    // Deep nesting must not blow the parser's stack into a 500.
    const deep = '['.repeat(8000) + ']'.repeat(8000)
    await refused(t, `${url} 8000-deep JSON`, { method: 'POST', url, headers: JSON_HEADERS, payload: deep }, { status: 400, error: 'invalid_request' })
    // Prototype poisoning.
    await refused(t, `${url} __proto__ key`, { method: 'POST', url, headers: JSON_HEADERS, payload: '{"__proto__":{"admin":true}}' }, { status: 400, error: 'invalid_request' })
    await refused(t, `${url} constructor.prototype key`, { method: 'POST', url, headers: JSON_HEADERS, payload: '{"constructor":{"prototype":{"admin":true}}}' }, { status: 400, error: 'invalid_request' })
  }
  // The cookie session a malformed /auth/token request came with is not rotated.
  await refused(
    t,
    '/auth/token malformed JSON with a live cookie',
    { method: 'POST', url: '/auth/token', headers: { ...JSON_HEADERS, origin: APP_ORIGIN, cookie: `${COOKIE}=${browserCookie.value}` }, payload: '{"x":' },
    { status: 400, error: 'invalid_request' },
  )
})

t.test('a key twice in one JSON object → 400 invalid_request, never "the last one wins"', async (t) => {
  const uri = JSON.stringify(REDIRECT_URI)
  const twice: [string, string, string][] = [
    ['/auth/login/start', 'two providers', `{"provider":"kakao","redirectUri":${uri},"provider":"google"}`],
    ['/auth/login/start', 'the same provider twice', `{"provider":"google","redirectUri":${uri},"provider":"google"}`],
    ['/auth/login/start', 'a key spelled once with an escape', `{"provider":"google","redirectUri":${uri},"\u0070rovider":"google"}`],
    ['/auth/token', 'two refresh tokens, the genuine one last', `{"refreshToken":"garbage","refreshToken":${JSON.stringify(native.refreshToken)}}`],
    ['/auth/logout', 'two refresh tokens, the genuine one first', `{"refreshToken":${JSON.stringify(native.refreshToken)},"refreshToken":"garbage"}`],
    ['/auth/signup', 'two nicknames', `{"signupToken":"${randomBytes(32).toString('base64url')}","nickname":"Eve","nickname":"Mallory"}`],
  ]
  for (const [url, what, payload] of twice) {
    await refused(t, `${url} with ${what}`, { method: 'POST', url, headers: JSON_HEADERS, payload }, { status: 400, error: 'invalid_request', message: /more than once/ })
  }
  // The controls: the same bodies with each key once are taken.
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', headers: JSON_HEADERS, payload: `{"provider":"google","redirectUri":${uri}}` })
  t.equal(start.statusCode, 200, 'login/start with each key once is accepted')
  t.equal((await me(native.accessToken)).statusCode, 200, 'the session the duplicated bodies named was neither rotated nor ended')
})

t.test('U+0000 anywhere in a JSON body → 400 invalid_request (PostgreSQL cannot store it), never a 500', async (t) => {
  const state = await freshState()
  const cases: [string, string, Record<string, unknown>][] = [
    // The resource is looked up in the database before anything else.
    ['/auth/login', 'a resource', { provider: 'google', code: 'x', redirectUri: REDIRECT_URI, state, resource: 'https://api.example/\u0000' }],
    ['/auth/login/start', 'a provider', { provider: 'goo\u0000gle', redirectUri: REDIRECT_URI }],
    ['/auth/token', 'a refresh token', { refreshToken: '\u0000' }],
    ['/auth/login/start', 'a key', { provider: 'google', redirectUri: REDIRECT_URI, ['x\u0000']: 1 }],
  ]
  for (const [url, what, payload] of cases) {
    await refused(t, `${url} with U+0000 in ${what}`, { method: 'POST', url, payload }, { status: 400, error: 'invalid_request', message: /U\+0000/ })
  }
  const good = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'x', redirectUri: REDIRECT_URI, state, resource: 'https://api.example/' } })
  t.equal(good.statusCode, 400, `the control: the same resource without U+0000 is judged as a resource (${good.body})`)
  t.equal(good.json().error, 'invalid_target', 'an unknown resource, not a malformed body')
})

t.test('a lone surrogate anywhere in a JSON body → 400 invalid_request, never a 500', async (t) => {
  const cases: [string, string, Record<string, unknown>][] = [
    ['/auth/login/start', 'a provider', { provider: 'goo\udc00gle', redirectUri: REDIRECT_URI }],
    ['/auth/token', 'a refresh token', { refreshToken: '\ud800' }],
    ['/auth/signup', 'a nickname', { signupToken: randomBytes(32).toString('base64url'), nickname: '¡\udc00' }],
    ['/auth/login/start', 'a key', { provider: 'google', redirectUri: REDIRECT_URI, ['x\udbff']: 1 }],
  ]
  for (const [url, what, payload] of cases) {
    await refused(t, `${url} with a lone surrogate in ${what}`, { method: 'POST', url, payload }, { status: 400, error: 'invalid_request', message: /well-formed Unicode/ })
  }
  const paired = await app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: randomBytes(32).toString('base64url'), nickname: 'Newcomer 😀' } })
  t.equal(paired.json().error, 'invalid_signup_token', `the control: a surrogate pair is text, and the request is judged on its ticket (${paired.body})`)
})

t.test('two refresh cookies in one request (cookie tossing) → 400 invalid_request, never "the first one wins"', async (t) => {
  const live = `${COOKIE}=${browserCookie.value}`
  const tossed = `${COOKIE}=${randomBytes(84).toString('base64url')}`
  for (const [what, cookie] of [
    ['the live cookie first', `${live}; ${tossed}`],
    ['the live cookie last', `${tossed}; ${live}`],
    ['the live cookie twice', `${live}; ${live}`],
    ['no space after the semicolon', `${tossed};${live}`],
    ['another cookie between', `${tossed}; theme=dark; ${live}`],
  ]) {
    for (const url of ['/auth/token', '/auth/logout']) {
      await refused(t, `${url} with ${what}`, { method: 'POST', url, headers: { origin: APP_ORIGIN, cookie } }, { status: 400, error: 'invalid_request', message: new RegExp(COOKIE) })
    }
  }
  // A body token does not make a tossed cookie go away either.
  await refused(
    t,
    '/auth/token with a body token and two cookies',
    { method: 'POST', url: '/auth/token', headers: { cookie: `${live}; ${tossed}` }, payload: { refreshToken: native.refreshToken } },
    { status: 400, error: 'invalid_request' },
  )
  // A browser of ours still gets rid of them at logout: the cookie expired and Clear-Site-Data.
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: { origin: APP_ORIGIN, cookie: `${tossed}; ${live}` } })
  t.equal(logout.headers['clear-site-data'], '"cookies"', 'the refused browser logout tells the browser to drop the site\'s cookies')
  t.match(String(logout.headers['set-cookie']), new RegExp(`^${COOKIE}=;`), 'and expires the refresh cookie')
  // A cookie of another name is not ours: next to it, the live cookie still rotates.
  const other = await loginWithGoogle(gateway, { sub: 'bad-input-tossing', name: 'Toss' }, { origin: APP_ORIGIN })
  const otherCookie = other.cookies.find((cookie) => cookie.name === COOKIE)!
  const otherName = await app.inject({ method: 'POST', url: '/auth/token', headers: { origin: APP_ORIGIN, cookie: `refresh_token=x; ${COOKIE}=${otherCookie.value}` } })
  t.equal(otherName.statusCode, 200, `refresh_token next to ${COOKIE} is someone else's cookie (${otherName.statusCode} ${otherName.body.slice(0, 200)})`)
  // The signup ticket cookie is held to the same rule.
  await refused(
    t,
    '/auth/signup with two signup ticket cookies',
    { method: 'POST', url: '/auth/signup', headers: { origin: APP_ORIGIN, cookie: '__Secure-signup_ticket=a; __Secure-signup_ticket=b' }, payload: { nickname: 'Tossed' } },
    { status: 400, error: 'invalid_request', message: /signup_ticket/ },
  )
})

t.test('the router\'s own refusals carry { error, message }: 414 for a long path parameter, 400 for broken %-encoding', async (t) => {
  await refused(t, 'a 101-character provider', { method: 'GET', url: `/auth/authorize/${'p'.repeat(101)}?returnTo=${APP_ORIGIN}/` }, { status: 414, error: 'uri_too_long' })
  await refused(t, 'a 101-character session id', { method: 'DELETE', url: `/auth/sessions/${'s'.repeat(101)}`, headers: { authorization: `Bearer ${native.accessToken}` } }, { status: 414, error: 'uri_too_long' })
  await refused(t, 'broken %-encoding in a path parameter', { method: 'GET', url: '/auth/callback/%E0%A4%A?state=x' }, { status: 400, error: 'invalid_request' })
  const control = await app.inject({ method: 'GET', url: `/auth/authorize/${'p'.repeat(100)}?returnTo=${APP_ORIGIN}/` })
  t.equal(control.statusCode, 400, `the control: a 100-character provider reaches the route's schema (${control.body})`)
  t.match(control.json(), { error: 'invalid_request', message: /params\.provider/ })
})

t.test('unknown fields → 400 invalid_request naming the field', async (t) => {
  const state = await freshState()
  await refused(
    t,
    'login with admin:true',
    { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'x', redirectUri: REDIRECT_URI, state, admin: true } },
    { status: 400, error: 'invalid_request', message: /admin/ },
  )
  await refused(
    t,
    'login with a userId',
    { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'x', redirectUri: REDIRECT_URI, state, userId: 'someone' } },
    { status: 400, error: 'invalid_request', message: /userId/ },
  )
  await refused(
    t,
    'login/start with returnTo',
    { method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI, returnTo: 'https://evil.example' } },
    { status: 400, error: 'invalid_request', message: /returnTo/ },
  )
  for (const field of ['provider', 'subject', 'userId', 'isAdmin']) {
    await refused(
      t,
      `signup with ${field}`,
      { method: 'POST', url: '/auth/signup', payload: { signupToken: randomBytes(32).toString('base64url'), nickname: 'Eve', [field]: 'google' } },
      { status: 400, error: 'invalid_request', message: new RegExp(field) },
    )
  }
  await refused(
    t,
    'refresh with a scope',
    { method: 'POST', url: '/auth/token', payload: { refreshToken: native.refreshToken, scope: 'admin' } },
    { status: 400, error: 'invalid_request', message: /scope/ },
  )
  await refused(
    t,
    'logout with a userId',
    { method: 'POST', url: '/auth/logout', payload: { refreshToken: native.refreshToken, userId: 'someone' } },
    { status: 400, error: 'invalid_request', message: /userId/ },
  )
  t.equal((await me(native.accessToken)).statusCode, 200, 'the session a refused logout named still lives')
})

t.test('wrong types → 400 invalid_request', async (t) => {
  const state = await freshState()
  const login = { provider: 'google', code: 'x', redirectUri: REDIRECT_URI, state }
  const cases: [string, string, Record<string, unknown>][] = [
    ['provider: 42', '/auth/login', { ...login, provider: 42 }],
    ['provider: null', '/auth/login', { ...login, provider: null }],
    ['provider: ["google"]', '/auth/login', { ...login, provider: ['google'] }],
    ['provider: {}', '/auth/login/start', { provider: {}, redirectUri: REDIRECT_URI }],
    ['provider: ""', '/auth/login/start', { provider: '', redirectUri: REDIRECT_URI }],
    ['code: 123', '/auth/login', { ...login, code: 123 }],
    ['code: ""', '/auth/login', { ...login, code: '' }],
    ['code over 2 KB', '/auth/login', { ...login, code: 'c'.repeat(2049) }],
    ['redirectUri: {}', '/auth/login', { ...login, redirectUri: {} }],
    ['redirectUri over 2 KB', '/auth/login/start', { provider: 'google', redirectUri: `${REDIRECT_URI}?${'r'.repeat(2100)}` }],
    ['state: true', '/auth/login', { ...login, state: true }],
    ['state over 256 chars', '/auth/login', { ...login, state: 's'.repeat(257) }],
    ['refreshToken: 42', '/auth/token', { refreshToken: 42 }],
    ['refreshToken: ["x"]', '/auth/logout', { refreshToken: ['x'] }],
    ['signupToken: []', '/auth/signup', { signupToken: [], nickname: 'Eve' }],
    ['nickname: 42', '/auth/signup', { signupToken: randomBytes(32).toString('base64url'), nickname: 42 }],
  ]
  for (const [what, url, payload] of cases) {
    await refused(t, `${url} ${what}`, { method: 'POST', url, payload }, { status: 400, error: 'invalid_request' })
  }
  for (const [url, payload] of [['/auth/login', '[]'], ['/auth/login', '"google"'], ['/auth/login', '42'], ['/auth/signup', 'null'], ['/auth/token', '[]'], ['/auth/token', '"x"']] as const) {
    await refused(t, `${url} body ${payload}`, { method: 'POST', url, headers: JSON_HEADERS, payload }, { status: 400, error: 'invalid_request' })
  }
})

t.test('a body over 16 KB → 413', async (t) => {
  const big = 'x'.repeat(17 * 1024)
  const bodies: [string, Record<string, unknown>][] = [
    ['/auth/login', { provider: 'google', code: big, redirectUri: REDIRECT_URI, codeVerifier: VERIFIER }],
    ['/auth/login/start', { provider: 'google', redirectUri: REDIRECT_URI, padding: big }],
    ['/auth/signup', { signupToken: 'x', nickname: big }],
    ['/auth/token', { refreshToken: big }],
  ]
  for (const [url, payload] of bodies) {
    await refused(t, `${url} 17 KB`, { method: 'POST', url, payload }, { status: 413 })
  }
})

t.test('a body that is not JSON → 415', async (t) => {
  const json = JSON.stringify({ provider: 'google', code: 'x', redirectUri: REDIRECT_URI, codeVerifier: VERIFIER })
  for (const url of ['/auth/login', '/auth/signup', '/auth/token']) {
    // A text/plain POST is what a cross-site form or a "simple" fetch can send without a preflight.
    await refused(t, `${url} text/plain`, { method: 'POST', url, headers: { 'content-type': 'text/plain' }, payload: json }, { status: 415 })
    await refused(t, `${url} form-encoded`, { method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'provider=google' }, { status: 415 })
    await refused(t, `${url} multipart`, { method: 'POST', url, headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: '--x--' }, { status: 415 })
    await refused(t, `${url} no content-type`, { method: 'POST', url, payload: Buffer.from(json) }, { status: 415 })
  }
  // The CSRF shape: a cross-site form carrying the cookie does not rotate it.
  await refused(
    t,
    '/auth/token text/plain with the cookie and an allowed origin',
    { method: 'POST', url: '/auth/token', headers: { 'content-type': 'text/plain', origin: APP_ORIGIN, cookie: `${COOKIE}=${browserCookie.value}` }, payload: 'x' },
    { status: 415 },
  )
})

t.test('prototype names and unknown providers → 400, no provider call', async (t) => {
  const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', 'kakao', 'naver', 'facebook', 'GOOGLE', ' google', 'google ', 'goog\u0000le']
  for (const provider of names) {
    await refused(
      t,
      `login/start provider ${JSON.stringify(provider)}`,
      { method: 'POST', url: '/auth/login/start', payload: { provider, redirectUri: REDIRECT_URI } },
      { status: 400, error: /^(unsupported_provider|invalid_request)$/ },
    )
    // A genuine state rides along: the refusal comes before it is consumed.
    const state = await freshState()
    await refused(
      t,
      `login provider ${JSON.stringify(provider)} with a state`,
      { method: 'POST', url: '/auth/login', payload: { provider, code: 'x', redirectUri: REDIRECT_URI, state } },
      { status: 400, error: /^(unsupported_provider|invalid_request)$/ },
    )
    await refused(
      t,
      `login provider ${JSON.stringify(provider)} with a codeVerifier`,
      { method: 'POST', url: '/auth/login', payload: { provider, code: 'x', redirectUri: REDIRECT_URI, codeVerifier: VERIFIER } },
      { status: 400, error: /^(unsupported_provider|invalid_request)$/ },
    )
  }
})

t.test('a redirectUri outside the allow-list → 400 invalid_redirect_uri', async (t) => {
  const uris = [
    'https://evil.example/callback',
    'https://app.example/callback/',
    'https://app.example/callbackx',
    'https://app.example/callback?next=https://evil.example',
    'https://app.example/callback#x',
    'https://app.example/callback/../evil',
    'https://app.example.evil.example/callback',
    'https://app.example@evil.example/callback',
    'HTTPS://APP.EXAMPLE/callback',
    'http://app.example/callback',
    'https://app.example:444/callback',
    'javascript:alert(1)',
    'not a url',
  ]
  for (const redirectUri of uris) {
    await refused(
      t,
      `login/start ${redirectUri}`,
      { method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri } },
      { status: 400, error: 'invalid_redirect_uri' },
    )
    const state = await freshState()
    await refused(
      t,
      `login ${redirectUri} with a state`,
      { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'x', redirectUri, state } },
      { status: 400, error: 'invalid_redirect_uri' },
    )
    await refused(
      t,
      `login ${redirectUri} with a codeVerifier`,
      { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'x', redirectUri, codeVerifier: VERIFIER } },
      { status: 400, error: 'invalid_redirect_uri' },
    )
  }
})

t.test('a state that was never issued, or was used → 400 invalid_state, no provider call', async (t) => {
  for (const state of [randomBytes(32).toString('base64url'), 'x', 'A'.repeat(43), '../../gw:login:x', '*']) {
    await refused(
      t,
      `unknown state ${state}`,
      { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'some-code', redirectUri: REDIRECT_URI, state } },
      { status: 400, error: 'invalid_state' },
    )
  }

  const { code, state } = await freshCode({ sub: 'bad-input-replay', name: 'Replay' })
  const first = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state } })
  t.equal(first.statusCode, 200, `the genuine login succeeds: ${first.statusCode >= 300 ? first.body : ''}`)
  t.equal(first.json().status, 'authenticated')
  await refused(
    t,
    'the same code and state replayed',
    { method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state } },
    { status: 400, error: 'invalid_state' },
  )
  const { code: otherCode } = await freshCode({ sub: 'bad-input-replay', name: 'Replay' })
  await refused(
    t,
    'a used state with a new code',
    { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: otherCode, redirectUri: REDIRECT_URI, state } },
    { status: 400, error: 'invalid_state' },
  )
})

t.test('state and codeVerifier: exactly one, and a well-formed verifier', async (t) => {
  const state = await freshState()
  const base = { provider: 'google', code: 'x', redirectUri: REDIRECT_URI }
  const cases: [string, Record<string, unknown>][] = [
    ['both state and codeVerifier', { ...base, state, codeVerifier: VERIFIER }],
    ['neither state nor codeVerifier', { ...base }],
    ['state with a nonce', { ...base, state, nonce: 'n' }],
    ['a 42-character codeVerifier', { ...base, codeVerifier: 'v'.repeat(42) }],
    ['a 129-character codeVerifier', { ...base, codeVerifier: 'v'.repeat(129) }],
    ['a codeVerifier with forbidden characters', { ...base, codeVerifier: `${'v'.repeat(42)}+/=` }],
    ['an empty codeVerifier', { ...base, codeVerifier: '' }],
    ['no code', { provider: 'google', redirectUri: REDIRECT_URI, state }],
    ['no redirectUri', { provider: 'google', code: 'x', state }],
    ['no provider', { code: 'x', redirectUri: REDIRECT_URI, state }],
    ['an empty nonce', { ...base, codeVerifier: VERIFIER, nonce: '' }],
  ]
  for (const [what, payload] of cases) {
    await refused(t, what, { method: 'POST', url: '/auth/login', payload }, { status: 400, error: 'invalid_request' })
  }
  await refused(t, 'login/start without redirectUri', { method: 'POST', url: '/auth/login/start', payload: { provider: 'google' } }, { status: 400, error: 'invalid_request' })
})

t.test('a code the provider rejects → 401 invalid_grant, nothing written', async (t) => {
  await refused(
    t,
    'a garbage code with the client\'s own verifier',
    { method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'garbage', redirectUri: REDIRECT_URI, codeVerifier: VERIFIER } },
    { status: 401, error: 'invalid_grant', providerCallAllowed: true },
  )
})

t.test('garbage refresh tokens in the body → 401 invalid_grant (or 400), never 500, nothing revoked', async (t) => {
  const genuine = Buffer.from(native.refreshToken, 'base64url')
  // Our user and session ids, with a secret we do not know: must not touch the real session.
  const samePrefix = Buffer.concat([genuine.subarray(0, 32), randomBytes(32)]).toString('base64url')
  const tokens: [string, string, number[]][] = [
    ['a random word', 'garbage', [401]],
    ['86 base64url characters that are not ours', randomBytes(64).toString('base64url'), [401]],
    ['our user and session ids with a guessed secret', samePrefix, [401]],
    ['a 10 KB string', 'r'.repeat(10 * 1024), [400, 401]],
    ['an access token as a refresh token', native.accessToken, [400, 401]],
    ['the genuine token with a character flipped', native.refreshToken.slice(0, -2) + (native.refreshToken.at(-2) === 'A' ? 'B' : 'A') + native.refreshToken.at(-1), [401]],
    ['characters outside base64url', `${'a'.repeat(84)}+/`, [401]],
    ['an empty string', '', [400, 401]],
  ]
  for (const [what, refreshToken, status] of tokens) {
    await refused(t, `refresh with ${what}`, { method: 'POST', url: '/auth/token', payload: { refreshToken } }, {
      status,
      error: status.length === 1 ? 'invalid_grant' : /^(invalid_grant|invalid_request)$/,
    })
  }
  // Logout with someone else's token is idempotent (204) but must not end that session.
  const before = await footprint()
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: samePrefix } })
  t.equal(logout.statusCode, 204, 'logout with an unknown token answers 204 (idempotent)')
  t.same(await footprint(), before, 'and ends no session')
  t.equal((await me(native.accessToken)).statusCode, 200, 'the genuine session survived the whole spray')
})

t.test('refresh cookies: garbage → 401, and never without an allowed Origin (CSRF) → 403', async (t) => {
  const garbage: [string, string][] = [
    ['a random word', 'garbage'],
    ['86 base64url characters that are not ours', randomBytes(64).toString('base64url')],
    ['a 10 KB value', 'c'.repeat(10 * 1024)],
    ['broken percent-encoding', '%E0%A4%A'],
    ['an empty value', ''],
  ]
  for (const [what, value] of garbage) {
    await refused(
      t,
      `cookie with ${what} and an allowed Origin`,
      { method: 'POST', url: '/auth/token', headers: { origin: APP_ORIGIN, cookie: `${COOKIE}=${value}` } },
      { status: 401, error: 'invalid_grant' },
    )
  }

  const cookie = `${COOKIE}=${browserCookie.value}`
  for (const url of ['/auth/token', '/auth/logout']) {
    await refused(t, `${url} with the live cookie and no Origin`, { method: 'POST', url, headers: { cookie } }, { status: 403, error: 'origin_not_allowed' })
    await refused(t, `${url} with the live cookie and a foreign Origin`, { method: 'POST', url, headers: { cookie, origin: FOREIGN_ORIGIN } }, { status: 403, error: 'origin_not_allowed' })
    await refused(t, `${url} with the live cookie and Origin: null`, { method: 'POST', url, headers: { cookie, origin: 'null' } }, { status: 403, error: 'origin_not_allowed' })
    await refused(
      t,
      `${url} with the live cookie and a look-alike Origin`,
      { method: 'POST', url, headers: { cookie, origin: `${APP_ORIGIN}.evil.example` } },
      { status: 403, error: 'origin_not_allowed' },
    )
    await refused(
      t,
      `${url} with the live cookie, a foreign Origin and a JSON body`,
      { method: 'POST', url, headers: { cookie, origin: FOREIGN_ORIGIN }, payload: {} },
      { status: 403, error: 'origin_not_allowed' },
    )
  }
  const wrongMethod = await app.inject({ method: 'GET', url: '/auth/logout', headers: { cookie, origin: APP_ORIGIN } })
  t.ok(wrongMethod.statusCode >= 400 && wrongMethod.statusCode < 500, 'logout by GET is refused')
  assertErrorBody(t, 'GET /auth/logout', wrongMethod)

  // The control: the same cookie with the allowed Origin still rotates, so the 403s were CSRF refusals.
  const rotated = await app.inject({ method: 'POST', url: '/auth/token', headers: { cookie, origin: APP_ORIGIN } })
  t.equal(rotated.statusCode, 200, `the live cookie works from the allowed origin: ${rotated.statusCode >= 300 ? rotated.body : ''}`)
  t.equal(rotated.json().refreshToken, undefined, 'a browser never gets the refresh token in the body')
})

t.test('a malformed Authorization header on /auth/me → 401 invalid_token with WWW-Authenticate', async (t) => {
  const headers: [string, string | undefined][] = [
    ['no header', undefined],
    ['an empty header', ''],
    ['Bearer', 'Bearer'],
    ['Bearer and a space', 'Bearer '],
    ['Basic abc', 'Basic abc'],
    ['Basic credentials', `Basic ${Buffer.from('alice:secret').toString('base64')}`],
    ['Bearer a b', 'Bearer a b'],
    ['two spaces', `Bearer  ${native.accessToken}`],
    ['a 10 KB token', `Bearer ${'t'.repeat(10 * 1024)}`],
    ['a 10 KB three-part token', `Bearer ${'a'.repeat(4000)}.${'b'.repeat(4000)}.${'c'.repeat(2000)}`],
    ['garbage three parts', 'Bearer a.b.c'],
    ['a refresh token', `Bearer ${native.refreshToken}`],
    ['a token with a quote', 'Bearer abc"def'],
    ['a non-ASCII token', 'Bearer t\u00e9st'],
    ['two tokens', `Bearer ${native.accessToken}, Bearer ${native.accessToken}`],
  ]
  for (const [what, authorization] of headers) {
    const response = await refused(
      t,
      `/auth/me with ${what}`,
      { method: 'GET', url: '/auth/me', headers: authorization === undefined ? {} : { authorization } },
      { status: 401, error: 'invalid_token' },
    )
    t.match(String(response.headers['www-authenticate'] ?? ''), /^Bearer\b/, `${what}: a WWW-Authenticate: Bearer challenge`)
  }
  t.equal((await me(native.accessToken)).statusCode, 200, 'the control: the well-formed header is accepted')
})

t.test('signup: bad fields and unknown tickets → 400/401, the ticket is neither consumed nor a user created', async (t) => {
  const first = await loginWithGoogle(gateway, { sub: 'bad-input-newcomer', email: 'newcomer@example.com' })
  t.equal(first.statusCode, 200, `${first.statusCode >= 300 ? first.body : 'accepted'}`)
  t.equal(first.json().status, 'signup_required')
  const signupToken = first.json().signupToken as string

  const badFields: [string, Record<string, unknown>][] = [
    ['a blank nickname', { signupToken, nickname: '   ' }],
    ['a tab-and-newline nickname', { signupToken, nickname: '\t\n' }],
    ['a no-break-space nickname', { signupToken, nickname: '\u00a0\u00a0' }],
    ['a zero-width-space nickname', { signupToken, nickname: '\u200b\u200b' }],
    ['an empty nickname', { signupToken, nickname: '' }],
    ['a 65-character nickname', { signupToken, nickname: 'n'.repeat(65) }],
    ['no nickname', { signupToken }],
    ['an http photo', { signupToken, nickname: 'Newcomer', photo: 'http://example.com/me.png' }],
    ['a javascript: photo', { signupToken, nickname: 'Newcomer', photo: 'javascript:alert(1)' }],
    ['a data: photo', { signupToken, nickname: 'Newcomer', photo: 'data:image/png;base64,AAAA' }],
    ['a photo that is not a URL', { signupToken, nickname: 'Newcomer', photo: 'me.png' }],
    ['an email without @', { signupToken, nickname: 'Newcomer', email: 'newcomer.example.com' }],
    ['an email with spaces', { signupToken, nickname: 'Newcomer', email: 'a b@example.com' }],
    // Control characters (PostgreSQL cannot store U+0000; none belongs in a profile).
    ['U+0000 in the nickname', { signupToken, nickname: 'New\u0000comer' }],
    ['a nickname that is only U+0000', { signupToken, nickname: '\u0000' }],
    ['U+0001 in the nickname', { signupToken, nickname: 'New\u0001comer' }],
    ['DEL in the nickname', { signupToken, nickname: 'New\u007fcomer' }],
    ['a C1 control (NEL, U+0085) in the nickname', { signupToken, nickname: 'New\u0085comer' }],
    ['a C1 control (CSI, U+009B) in the nickname', { signupToken, nickname: 'New\u009bcomer' }],
    ['a newline inside the nickname', { signupToken, nickname: 'New\ncomer' }],
    ['a line separator (U+2028) inside the nickname', { signupToken, nickname: 'New\u2028comer' }],
    ['a lone surrogate in the nickname', { signupToken, nickname: 'New\ud800comer' }],
    // Zero-width and invisible characters: a name that looks like another, or like nothing.
    ...['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u180e'].map((char): [string, Record<string, unknown>] =>
      [`U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} inside the nickname`, { signupToken, nickname: `New${char}comer` }]),
    ['a byte order mark before the nickname (trim would hide it)', { signupToken, nickname: '\ufeffNewcomer' }],
    ['a nickname of Hangul fillers', { signupToken, nickname: '\u3164\u3164' }],
    // Bidirectional controls: text shown in another order than it reads.
    ...['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c'].map((char): [string, Record<string, unknown>] =>
      [`U+${char.codePointAt(0)!.toString(16).toUpperCase()} in the nickname`, { signupToken, nickname: `${char}Newcomer` }]),
    // The typed email and photo are held to the same rules.
    ['U+0000 in the email', { signupToken, nickname: 'Newcomer', email: 'new\u0000comer@example.com' }],
    ['a C1 control in the email', { signupToken, nickname: 'Newcomer', email: 'newcomer@example.com\u0085' }],
    ['a zero-width space in the email', { signupToken, nickname: 'Newcomer', email: 'new\u200bcomer@example.com' }],
    ['a right-to-left override in the email', { signupToken, nickname: 'Newcomer', email: 'newcomer@\u202emoc.elpmaxe' }],
    ['U+0000 in the photo', { signupToken, nickname: 'Newcomer', photo: 'https://example.com/\u0000.png' }],
    ['U+0001 in the photo', { signupToken, nickname: 'Newcomer', photo: 'https://example.com/\u0001.png' }],
    ['a right-to-left override in the photo', { signupToken, nickname: 'Newcomer', photo: 'https://example.com/\u202egnp.exe' }],
    ['a zero-width joiner in the photo', { signupToken, nickname: 'Newcomer', photo: 'https://exa\u200dmple.com/me.png' }],
    ['an empty signupToken', { signupToken: '', nickname: 'Newcomer' }],
    ['a 300-character signupToken', { signupToken: 's'.repeat(300), nickname: 'Newcomer' }],
  ]
  for (const [what, payload] of badFields) {
    await refused(t, `signup with ${what}`, { method: 'POST', url: '/auth/signup', payload }, { status: 400, error: 'invalid_request' })
  }
  // The body may leave the ticket out (a browser's pending signup is a cookie): without either, there is no signup to finish.
  await refused(t, 'signup with no signupToken and no pending signup', { method: 'POST', url: '/auth/signup', payload: { nickname: 'Newcomer' } }, { status: 401, error: 'invalid_signup_token' })
  for (const [what, token] of [
    ['an unknown ticket', randomBytes(32).toString('base64url')],
    ['a malformed ticket', 'not-a-ticket'],
    ['the ticket with a character changed', signupToken.slice(0, -1) + (signupToken.endsWith('A') ? 'B' : 'A')],
    ['a refresh token as a ticket', native.refreshToken.slice(0, 200)],
  ] as const) {
    await refused(t, `signup with ${what}`, { method: 'POST', url: '/auth/signup', payload: { signupToken: token, nickname: 'Newcomer' } }, { status: 401, error: 'invalid_signup_token' })
  }
  await refused(
    t,
    'signup from a foreign Origin',
    { method: 'POST', url: '/auth/signup', headers: { origin: FOREIGN_ORIGIN }, payload: { signupToken, nickname: 'Newcomer' } },
    { status: 403, error: 'origin_not_allowed' },
  )

  // The control: the ticket the refused requests carried is still good, once.
  const users = await prisma.user.count()
  const done = await app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken, nickname: '  Newcomer  ' } })
  t.equal(done.statusCode, 201, `the untouched ticket completes signup: ${done.statusCode >= 300 ? done.body : ''}`)
  t.equal(done.json().user.nickname, 'Newcomer', 'the nickname is trimmed')
  t.equal(await prisma.user.count(), users + 1, 'exactly one user was created, by the good request')
})

t.test('signup text is taken in Unicode NFC; the email lower-cased', async (t) => {
  const first = await loginWithGoogle(gateway, { sub: 'bad-input-nfc' })
  t.equal(first.json().status, 'signup_required')
  // "e" + COMBINING ACUTE ACCENT, and a Hangul syllable typed as its jamo: one spelling each.
  const done = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { signupToken: first.json().signupToken, nickname: ' Cafe\u0301 \u1112\u1161\u11ab ', email: 'Cafe\u0301@Example.COM' },
  })
  t.equal(done.statusCode, 201, done.body)
  t.equal(done.json().user.nickname, 'Caf\u00e9 \ud55c', 'the nickname is NFC and trimmed')
  t.equal(done.json().user.email, 'caf\u00e9@example.com', 'the email is NFC and lower-cased')
  const stored = await prisma.user.findFirst({ where: { publicId: done.json().user.id } })
  t.equal(stored?.nickname, 'Caf\u00e9 \ud55c', 'stored as NFC')
})

t.test('a foreign Origin on login → 403 origin_not_allowed before any provider call', async (t) => {
  await refused(
    t,
    'login/start from a foreign Origin',
    { method: 'POST', url: '/auth/login/start', headers: { origin: FOREIGN_ORIGIN }, payload: { provider: 'google', redirectUri: REDIRECT_URI } },
    { status: 403, error: 'origin_not_allowed' },
  )
  const { code, state } = await freshCode({ sub: 'bad-input-origin', name: 'Origin' })
  const payload = { provider: 'google', code, redirectUri: REDIRECT_URI, state }
  for (const origin of [FOREIGN_ORIGIN, 'null', 'http://app.example', `${APP_ORIGIN}:8443`, `${APP_ORIGIN}.evil.example`, 'https://APP.example ']) {
    await refused(t, `login with a genuine code from Origin ${origin}`, { method: 'POST', url: '/auth/login', headers: { origin }, payload }, { status: 403, error: 'origin_not_allowed' })
  }
  await refused(
    t,
    'login with a codeVerifier from a foreign Origin',
    { method: 'POST', url: '/auth/login', headers: { origin: FOREIGN_ORIGIN }, payload: { provider: 'google', code, redirectUri: REDIRECT_URI, codeVerifier: VERIFIER } },
    { status: 403, error: 'origin_not_allowed' },
  )
  // The control: the code and state the refused requests carried were good and unconsumed.
  const good = await app.inject({ method: 'POST', url: '/auth/login', payload })
  t.equal(good.statusCode, 200, `the same code and state log in without the foreign Origin: ${good.statusCode >= 300 ? good.body : ''}`)
  t.equal(good.json().status, 'authenticated')
})
