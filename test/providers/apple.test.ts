// Sign in with Apple through the gateway, against the Apple emulator: the web flow's form
// POST (the name only in the first one), native sign-in with and without its code, the
// nonce Apple carries hashed, string booleans, the grant kept encrypted for revocation,
// and the client_secret the gateway signs and renews itself.

import { createHash, randomBytes } from 'node:crypto'
import * as jose from 'jose'
import t from 'tap'
import { EMULATED_CREDENTIALS } from '../../emulators/providers.js'
import { APP_ORIGIN, startTestGateway, type TestGateway } from '../support/gateway.js'

const ENCRYPTION_KEY = { kty: 'oct', kid: 'test-enc-1', k: randomBytes(32).toString('base64url') }
const gateway = await startTestGateway({ database: 'pglite', apple: true, env: { ENCRYPTION_KEYS: JSON.stringify({ keys: [ENCRYPTION_KEY] }) } })
t.teardown(() => gateway.close())
const apple = gateway.apple!
const { servicesId, bundleId } = EMULATED_CREDENTIALS.apple
const RETURN_TO = `${APP_ORIGIN}/signed-in`

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex')
const login = (payload: Record<string, unknown>) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'apple', ...payload } })

type Cookies = Record<string, string>
const cookiesOf = (response: { cookies: { name: string; value: string }[] }): Cookies =>
  Object.fromEntries(response.cookies.filter((cookie) => cookie.value !== '').map((cookie) => [cookie.name, cookie.value]))

/** The grant the gateway keeps for an Apple subject, decrypted with the test's key. */
async function keptGrant(subject: string) {
  const identity = await gateway.database.prisma.identity.findUnique({ where: { provider_subject: { provider: 'apple', subject } } })
  if (!identity?.sealedGrant) return { sealed: undefined, grant: undefined }
  const { plaintext } = await jose.compactDecrypt(identity.sealedGrant, Buffer.from(ENCRYPTION_KEY.k, 'base64url'))
  return { sealed: identity.sealedGrant, grant: JSON.parse(new TextDecoder().decode(plaintext)) as { clientId: string; refreshToken?: string } }
}

/** The web flow up to Apple's form POST: what the browser would post, and the binding cookie. */
async function throughApple(gateway: TestGateway, account: Parameters<typeof apple.authorize>[1]) {
  const start = await gateway.app.inject({ method: 'GET', url: `/auth/authorize/apple?returnTo=${encodeURIComponent(RETURN_TO)}` })
  if (start.statusCode !== 302) throw new Error(`authorize: ${start.statusCode} ${start.body}`)
  const form = await apple.authorize(String(start.headers.location), account)
  return { start, form, binding: cookiesOf(start) }
}

const postCallback = (fields: Record<string, string>, cookies: Cookies) =>
  gateway.app.inject({
    method: 'POST',
    url: '/auth/callback/apple',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://appleid.apple.com' },
    payload: new URLSearchParams(fields).toString(),
    cookies,
  })

t.test('web: Apple POSTs the callback; the first one names the new user, later ones keep that name', async (t) => {
  const account = { sub: '001234.web-1', email: 'ann@example.com', name: { firstName: 'Ann', lastName: 'Lee' } }
  const first = await throughApple(gateway, account)
  const authorization = new URL(String(first.start.headers.location))
  t.equal(authorization.origin, apple.issuer)
  t.equal(authorization.searchParams.get('response_mode'), 'form_post', 'name and email scopes need form_post')
  t.equal(authorization.searchParams.get('scope'), 'name email')
  t.equal(authorization.searchParams.get('client_id'), servicesId)
  t.match(String(first.start.headers['set-cookie']), /__Secure-form_post_binding=[^;]+; Max-Age=600; Path=\/auth\/callback; HttpOnly; Secure; SameSite=None/, 'the binding cookie survives a cross-site POST')
  t.ok(first.form.fields.user, 'Apple sends the name the first time')
  t.equal(first.form.action, `${gateway.config.publicUrl}/auth/callback/apple`)

  const callback = await postCallback(first.form.fields, first.binding)
  t.equal(callback.statusCode, 302, { body: callback.body })
  t.equal(callback.headers.location, RETURN_TO, 'back to the app, nothing secret in the URL')
  const refreshCookie = cookiesOf(callback)['__Secure-refresh_token']
  t.ok(refreshCookie, 'the session is in its cookie')
  const refreshed = await gateway.app.inject({ method: 'POST', url: '/auth/token', cookies: { '__Secure-refresh_token': refreshCookie! }, headers: { origin: APP_ORIGIN } })
  const me = await gateway.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${refreshed.json().accessToken}` } })
  t.match(me.json(), { nickname: 'Ann Lee', email: 'ann@example.com', identities: [{ provider: 'apple', email: 'ann@example.com' }] })

  const second = await throughApple(gateway, { ...account, name: { firstName: 'Changed', lastName: 'Name' } })
  t.notOk(second.form.fields.user, 'Apple sends the name only once')
  const again = await postCallback(second.form.fields, second.binding)
  t.equal(again.statusCode, 302)
  const users = await gateway.database.prisma.user.findMany({ where: { identities: { some: { provider: 'apple', subject: account.sub } } } })
  t.equal(users.length, 1, 'the same account')
  t.equal(users[0]!.nickname, 'Ann Lee', 'the name from the first POST is kept')

  const { sealed, grant } = await keptGrant(account.sub)
  t.match(sealed, /^[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/, 'the grant is stored as a compact JWE (dir)')
  t.equal(grant?.clientId, servicesId, 'a web grant revokes as the Services ID')
  t.ok(grant?.refreshToken && !sealed!.includes(grant.refreshToken), 'Apple\'s refresh token is kept, never in the clear')
})

t.test('web: a form POST without the binding cookie, or to a provider that redirects, is refused', async (t) => {
  const { form } = await throughApple(gateway, { sub: '001234.web-csrf', email: 'csrf@example.com', name: { firstName: 'Eve' } })
  const users = await gateway.database.prisma.user.count()
  const noCookie = await postCallback(form.fields, {})
  t.equal(noCookie.statusCode, 400)
  t.equal(noCookie.json().error, 'invalid_state')
  t.equal(await gateway.database.prisma.user.count(), users, 'nobody was created')

  const google = await gateway.app.inject({
    method: 'POST',
    url: '/auth/callback/google',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'state=x&code=y',
  })
  t.equal(google.statusCode, 400)
  t.equal(google.json().error, 'invalid_request')

  const repeated = await postCallback({}, {}).then(() =>
    gateway.app.inject({ method: 'POST', url: '/auth/callback/apple', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'state=a&state=b' }),
  )
  t.equal(repeated.statusCode, 400, 'a repeated field is refused')
  t.match(repeated.json(), { error: 'invalid_request' })
})

t.test('web: an ID token Apple did not sign sends the browser back with invalid_grant and writes nothing', async (t) => {
  const { form, binding } = await throughApple(gateway, { sub: '001234.web-forged', email: 'forged@example.com', name: { firstName: 'Mal' } })
  const users = await gateway.database.prisma.user.count()
  apple.forgeNextIdToken()
  const callback = await postCallback(form.fields, binding)
  t.equal(callback.statusCode, 302, { body: callback.body })
  t.equal(callback.headers.location, `${RETURN_TO}?error=invalid_grant`)
  t.notOk(cookiesOf(callback)['__Secure-refresh_token'], 'no session cookie')
  t.equal(await gateway.database.prisma.user.count(), users, 'nobody was created')
})

t.test('web: a user who cancels at Apple goes back with access_denied', async (t) => {
  const start = await gateway.app.inject({ method: 'GET', url: `/auth/authorize/apple?returnTo=${encodeURIComponent(RETURN_TO)}` })
  const form = await apple.deny(String(start.headers.location))
  const callback = await postCallback(form.fields, cookiesOf(start))
  t.equal(callback.statusCode, 302)
  t.equal(callback.headers.location, `${RETURN_TO}?error=access_denied`)
})

t.test('native: identity token, raw nonce and code log in; the name fills the nickname; the grant is the bundle ID\'s', async (t) => {
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await apple.nativeSignIn(bundleId, { sub: '001234.native-1', email: 'x7@privaterelay.appleid.com', name: { firstName: '길동', lastName: '홍' } }, { nonce: sha256Hex(rawNonce) })
  const response = await login({ idToken: signIn.identityToken, nonce: rawNonce, code: signIn.authorizationCode, name: signIn.fullName })
  t.equal(response.statusCode, 200, { body: response.body })
  t.match(response.json(), { status: 'authenticated', isNewUser: true, user: { nickname: '홍길동', email: 'x7@privaterelay.appleid.com' } })
  t.equal((await keptGrant('001234.native-1')).grant?.clientId, bundleId, 'a native code is exchanged, and revoked later, as the bundle ID')
  t.match(apple.tokenRequests().at(-1), { clientId: bundleId, grantType: 'authorization_code', outcome: 'ok' })
})

t.test('native: an identity token alone logs in, with no grant kept', async (t) => {
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await apple.nativeSignIn(bundleId, { sub: '001234.native-2', email: 'bo@example.com', name: { firstName: 'Bo' } }, { nonce: sha256Hex(rawNonce) })
  const response = await login({ idToken: signIn.identityToken, nonce: rawNonce, name: { givenName: 'Bo' } })
  t.equal(response.statusCode, 200, { body: response.body })
  t.match(response.json().user, { nickname: 'Bo', email: 'bo@example.com' })
  t.equal((await keptGrant('001234.native-2')).grant, undefined)
})

t.test('native: the nonce must be the one whose hash Apple signed', async (t) => {
  const rawNonce = randomBytes(16).toString('hex')
  const users = await gateway.database.prisma.user.count()
  for (const [what, sent] of [
    ['another nonce', 'not-the-nonce'],
    ['the hash itself (what anyone reading the token sees)', sha256Hex(rawNonce)],
    ['no nonce', undefined],
  ] as const) {
    const signIn = await apple.nativeSignIn(bundleId, { sub: '001234.nonce', name: { firstName: 'N' } }, { nonce: sha256Hex(rawNonce) })
    const refused = await login({ idToken: signIn.identityToken, ...(sent === undefined ? {} : { nonce: sent }) })
    t.equal(refused.statusCode, 401, what)
    t.equal(refused.json().error, 'invalid_grant', what)
  }
  t.equal(await gateway.database.prisma.user.count(), users, 'nobody was created')
})

t.test('native: a token for another app, or a code of another sign-in, is refused and writes nothing', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const foreign = await apple.signIdToken({ iss: apple.issuer, aud: 'com.other.app', sub: '001234.foreign', iat: now, exp: now + 600, email: 'f@example.com', email_verified: 'true' })
  const wrongAudience = await login({ idToken: foreign })
  t.equal(wrongAudience.statusCode, 401)
  t.equal(wrongAudience.json().error, 'invalid_grant')

  const rawNonce = randomBytes(16).toString('hex')
  const mine = await apple.nativeSignIn(bundleId, { sub: '001234.victim', name: { firstName: 'V' } }, { nonce: sha256Hex(rawNonce) })
  const theirs = await apple.nativeSignIn(bundleId, { sub: '001234.other', name: { firstName: 'O' } })
  const users = await gateway.database.prisma.user.count()
  const mixed = await login({ idToken: mine.identityToken, nonce: rawNonce, code: theirs.authorizationCode })
  t.equal(mixed.statusCode, 401, { body: mixed.body })
  t.equal(mixed.json().error, 'invalid_grant')
  t.equal(await gateway.database.prisma.user.count(), users, 'nobody was created')

  const retry = await login({ idToken: mine.identityToken, nonce: rawNonce })
  t.equal(retry.statusCode, 200, 'the refused attempt did not spend the identity token')
})

t.test('email_verified arrives as a string or a boolean; only "true" or true counts', async (t) => {
  for (const [booleans, verified, expected] of [
    ['string', true, 'yes'],
    ['boolean', true, 'yes'],
    ['string', false, 'no'],
    ['boolean', false, 'no'],
  ] as const) {
    const rawNonce = randomBytes(16).toString('hex')
    const sub = `001234.ev-${booleans}-${verified}`
    const signIn = await apple.nativeSignIn(bundleId, { sub, email: `${sub}@example.com`, emailVerified: verified, booleans, name: { firstName: 'Eve' } }, { nonce: sha256Hex(rawNonce) })
    const response = await login({ idToken: signIn.identityToken, nonce: rawNonce, name: { givenName: 'Eve' } })
    t.equal(response.statusCode, 200, { body: response.body })
    t.equal(response.json().user.email, expected === 'yes' ? `${sub}@example.com` : undefined, `${booleans} ${verified}`)
  }
})

t.test('name and code belong to Apple only', async (t) => {
  const withName = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken: 'a.b.c', name: { givenName: 'X' } } })
  t.equal(withName.statusCode, 400)
  t.equal(withName.json().error, 'invalid_request')
  const withCode = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken: 'a.b.c', code: 'x' } })
  t.equal(withCode.statusCode, 400)
  t.equal(withCode.json().error, 'invalid_request')
  const badName = await login({ idToken: 'a.b.c', name: { givenName: 'x'.repeat(101) } })
  t.equal(badName.statusCode, 400)
})

t.test('the gateway signs its client_secret once, and a new one once half its life has passed', async (t) => {
  const renewing = await startTestGateway({ database: 'pglite', apple: true, env: { APPLE_CLIENT_SECRET_TTL: '4' } })
  t.teardown(() => renewing.close())
  const emulator = renewing.apple!
  const exchange = async (sub: string) => {
    const rawNonce = randomBytes(16).toString('hex')
    const signIn = await emulator.nativeSignIn(bundleId, { sub, name: { firstName: 'R' } }, { nonce: sha256Hex(rawNonce) })
    const response = await renewing.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'apple', idToken: signIn.identityToken, nonce: rawNonce, code: signIn.authorizationCode } })
    t.equal(response.statusCode, 200, { body: response.body })
    return emulator.tokenRequests().at(-1)!
  }
  const first = await exchange('001234.renew-1')
  const second = await exchange('001234.renew-2')
  t.equal(second.clientSecretIat, first.clientSecretIat, 'the same secret, not one per call')
  await new Promise((resolve) => setTimeout(resolve, 2_100))
  const third = await exchange('001234.renew-3')
  t.equal(third.outcome, 'ok')
  t.ok(third.clientSecretIat! > first.clientSecretIat!, 'a new secret, accepted by Apple')
})

t.test('bad form posts to the Apple callback get a 4xx JSON answer and change nothing', async (t) => {
  const before = { users: await gateway.database.prisma.user.count(), identities: await gateway.database.prisma.identity.count() }
  const post = (payload: string, contentType = 'application/x-www-form-urlencoded') =>
    gateway.app.inject({ method: 'POST', url: '/auth/callback/apple', headers: { 'content-type': contentType }, payload })
  const cases = [
    ['no state', post('code=abc')],
    ['NUL bytes', post('state=%00%00&code=a%00b&user=%00')],
    ['an oversized form', post(`state=s&user=${'x'.repeat(20_000)}`)],
    ['a JSON body', post(JSON.stringify({ state: 's', code: 'c' }), 'application/json')],
    ['a text body', post('state=s', 'text/plain')],
    ['an unknown state', post('state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code=c')],
  ] as const
  for (const [what, pending] of cases) {
    const response = await pending
    t.ok(response.statusCode >= 400 && response.statusCode < 500, `${what}: ${response.statusCode}`)
    t.match(response.json(), { error: String, message: String }, `${what}: { error, message }`)
  }
  // A first POST whose `user` is not JSON, or names no usable name, still logs in: the user is asked for a nickname.
  const { form, binding } = await throughApple(gateway, { sub: '001234.bad-user', email: 'bad-user@example.com', name: { firstName: 'Unused' } })
  const callback = await postCallback({ ...form.fields, user: '{"name":{"firstName":"\u202eevil"}' }, binding)
  t.equal(callback.statusCode, 302)
  t.equal(callback.headers.location, `${RETURN_TO}?signup=required`, 'no usable name: signup asks for one')
  t.same(
    { users: await gateway.database.prisma.user.count(), identities: await gateway.database.prisma.identity.count() },
    before,
    'no user or identity was written',
  )

  const signup = await gateway.app.inject({
    method: 'POST',
    url: '/auth/signup',
    headers: { origin: APP_ORIGIN },
    cookies: { '__Secure-signup_ticket': cookiesOf(callback)['__Secure-signup_ticket']! },
    payload: { nickname: 'Typed' },
  })
  t.equal(signup.statusCode, 201, { body: signup.body })
  t.equal((await keptGrant('001234.bad-user')).grant?.clientId, servicesId, 'the grant rode the signup ticket to the new account')
})

/** A native Apple sign-in that created an account: its user id and refresh token. */
async function appleUser(sub: string) {
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await apple.nativeSignIn(bundleId, { sub, email: `${sub}@privaterelay.appleid.com`, name: { firstName: 'Nia' } }, { nonce: sha256Hex(rawNonce) })
  const response = await login({ idToken: signIn.identityToken, nonce: rawNonce, code: signIn.authorizationCode, name: signIn.fullName })
  if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode} ${response.body}`)
  return { userId: response.json().user.id as string, refreshToken: response.json().refreshToken as string }
}

const notify = (body: unknown) => gateway.app.inject({ method: 'POST', url: '/webhooks/apple', payload: body as Record<string, unknown> })
const prisma = gateway.database.prisma

t.test('Apple notifications: consent-revoked unlinks Apple and ends the sessions; account-delete of an only identity deletes the account', async (t) => {
  const both = await appleUser('001234.notify-both')
  const user = await prisma.user.findUniqueOrThrow({ where: { publicId: both.userId } })
  await prisma.identity.create({ data: { provider: 'google', subject: 'google-of-notify-both', userId: user.id } })
  const revoked = await notify(await apple.notification({ type: 'consent-revoked', sub: '001234.notify-both' }))
  t.equal(revoked.statusCode, 200, { body: revoked.body })
  t.same(revoked.json(), { outcome: 'unlinked' })
  t.same(await prisma.identity.findMany({ where: { userId: user.id }, select: { provider: true } }), [{ provider: 'google' }])
  t.equal((await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: both.refreshToken } })).statusCode, 401, 'the session ended')

  const only = await appleUser('001234.notify-only')
  const deleted = await notify(await apple.notification({ type: 'account-delete', sub: '001234.notify-only' }))
  t.same(deleted.json(), { outcome: 'deleted' })
  t.equal(await prisma.user.count({ where: { publicId: only.userId } }), 0, 'the account is gone')
  t.notOk((await prisma.job.findMany()).some((job) => job.payload.includes('001234.notify-only')), 'Apple ended its side already: no revocation job')
  t.equal((await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: only.refreshToken } })).statusCode, 401)
})

t.test('Apple notifications: email-disabled and email-enabled record whether the relay forwards', async (t) => {
  await appleUser('001234.notify-mail')
  const forwards = async () => (await prisma.identity.findUniqueOrThrow({ where: { provider_subject: { provider: 'apple', subject: '001234.notify-mail' } } })).emailForwards
  t.equal(await forwards(), null, 'not told yet')
  t.same((await notify(await apple.notification({ type: 'email-disabled', sub: '001234.notify-mail' }))).json(), { outcome: 'recorded' })
  t.equal(await forwards(), false)
  t.same((await notify(await apple.notification({ type: 'email-enabled', sub: '001234.notify-mail' }))).json(), { outcome: 'recorded' })
  t.equal(await forwards(), true)
})

t.test('Apple notifications: forged, replayed, stale or for another audience are refused and change nothing', async (t) => {
  const victim = await appleUser('001234.notify-victim')
  const event = { type: 'account-delete', sub: '001234.notify-victim' } as const
  const { privateKey } = await jose.generateKeyPair('RS256')
  const forged = await new jose.SignJWT({ iss: apple.issuer, aud: servicesId, jti: 'forged-1', events: JSON.stringify({ ...event, event_time: Date.now() }) })
    .setProtectedHeader({ alg: 'RS256', kid: 'not-apples' })
    .setIssuedAt()
    .sign(privateKey)
  const now = Math.floor(Date.now() / 1000)
  const cases = [
    ['signed by another key', { payload: forged }],
    ['another audience', await apple.notification(event, { aud: 'com.other.app' })],
    ['another issuer', await apple.notification(event, { iss: 'https://evil.example' })],
    ['two hours old', await apple.notification(event, { iat: now - 7200 })],
    ['not a JWS', { payload: 'not.a.jws' }],
    ['no payload', {}],
    ['events not JSON', await apple.notification(event, { events: '{not json' })],
  ] as const
  for (const [what, body] of cases) {
    const response = await notify(body)
    t.ok(response.statusCode >= 400 && response.statusCode < 500, `${what}: ${response.statusCode}`)
    t.match(response.json(), { error: String, message: String }, what)
  }
  t.equal(await prisma.user.count({ where: { publicId: victim.userId } }), 1, 'the account is still there')
  t.equal((await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: victim.refreshToken } })).statusCode, 200, 'and its session')

  const disabled = await apple.notification({ type: 'email-disabled', sub: '001234.notify-victim' })
  t.equal((await notify(disabled)).statusCode, 200)
  const replay = await notify(disabled)
  t.equal(replay.statusCode, 401, 'a jti is heard once')
  const unknown = await notify(await apple.notification({ type: 'consent-revoked', sub: '001234.nobody' }))
  t.same(unknown.json(), { outcome: 'unknown' }, 'a user we do not know: 200, nothing changes')
})
