import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import * as jose from 'jose'
import { startAppleEmulator, type AppleAccount } from '../../emulators/apple.js'

const teamId = 'TEAM123456'
const keyId = 'KEY1234567'
const servicesId = 'com.example.gateway.web'
const bundleId = 'com.example.gateway'
const redirectUri = 'http://127.0.0.1:3999/auth/callback/apple'

// The developer's .p8 key, as the gateway holds it: PKCS#8 text.
const developer = await jose.generateKeyPair('ES256', { extractable: true })
const p8 = await jose.importPKCS8(await jose.exportPKCS8(developer.privateKey), 'ES256')
const emulator = await startAppleEmulator({
  teamId,
  keyId,
  developerPublicKey: await jose.exportSPKI(developer.publicKey),
  servicesId,
  bundleIds: [bundleId],
  redirectUris: [redirectUri],
})
t.teardown(() => emulator.stop())
const keys = jose.createRemoteJWKSet(new URL(`${emulator.issuer}/auth/keys`))

interface SecretEdits { iss?: string; aud?: string; iat?: number; exp?: number; kid?: string; key?: jose.CryptoKey }

/** A client_secret as Apple wants it, with one thing changed when asked. */
function clientSecret(sub = servicesId, edits: SecretEdits = {}): Promise<string> {
  const iat = edits.iat ?? Math.floor(Date.now() / 1000)
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: edits.kid ?? keyId })
    .setIssuer(edits.iss ?? teamId)
    .setSubject(sub)
    .setAudience(edits.aud ?? 'https://appleid.apple.com')
    .setIssuedAt(iat)
    .setExpirationTime(edits.exp ?? iat + 3600)
    .sign(edits.key ?? p8)
}

async function post(path: string, form: Record<string, string>) {
  const res = await fetch(`${emulator.issuer}${path}`, { method: 'POST', body: new URLSearchParams(form) })
  const text = await res.text()
  return { status: res.status, text, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }
}

async function token(form: Record<string, string>, clientId = servicesId) {
  return post('/auth/token', { client_id: clientId, client_secret: await clientSecret(clientId), ...form })
}

function authorizationUrl(params: Record<string, string>): URL {
  const url = new URL(`${emulator.issuer}/auth/authorize`)
  const defaults = { client_id: servicesId, redirect_uri: redirectUri, response_type: 'code', scope: 'name email', response_mode: 'form_post', state: 'st-1' }
  for (const [name, value] of Object.entries({ ...defaults, ...params })) if (value !== '') url.searchParams.set(name, value)
  return url
}

/** An authorization with PKCE, as the gateway starts one. */
function pkce() {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

let subs = 0
const account = (extra: Partial<AppleAccount> = {}): AppleAccount => ({
  sub: `001234.${(++subs).toString(16).padStart(32, '0')}.1234`,
  email: 'x7y8z9@privaterelay.appleid.com',
  name: { firstName: 'Ada', lastName: 'Lovelace' },
  ...extra,
})

const verify = async (idToken: string, audience: string) => (await jose.jwtVerify(idToken, keys, { issuer: emulator.issuer, audience })).payload

t.test('discovery lists Apple’s endpoints and habits', async (t) => {
  const meta = (await (await fetch(`${emulator.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>
  t.match(emulator.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(meta.issuer, emulator.issuer)
  t.equal(meta.authorization_endpoint, `${emulator.issuer}/auth/authorize`)
  t.equal(meta.token_endpoint, `${emulator.issuer}/auth/token`)
  t.equal(meta.revocation_endpoint, `${emulator.issuer}/auth/revoke`)
  t.equal(meta.jwks_uri, `${emulator.issuer}/auth/keys`)
  t.same(meta.response_modes_supported, ['query', 'fragment', 'form_post'])
  t.same(meta.response_types_supported, ['code', 'code id_token'])
  t.same(meta.subject_types_supported, ['pairwise'])
  t.same(meta.token_endpoint_auth_methods_supported, ['client_secret_post'])
  t.same(meta.code_challenge_methods_supported, ['S256'])
  const jwks = (await (await fetch(`${emulator.issuer}/auth/keys`)).json()) as { keys: Record<string, unknown>[] }
  t.match(jwks.keys[0], { kty: 'RSA', alg: 'RS256', kid: String })
  t.equal((await fetch(`${emulator.issuer}/auth/nothing`)).status, 404)
})

t.test('authorize refuses what Apple refuses, on a page', async (t) => {
  const refused = async (params: Record<string, string>, error: string) => {
    const res = await fetch(authorizationUrl(params))
    t.equal(res.status, 400, JSON.stringify(params))
    t.match(await res.text(), error)
  }
  await refused({ response_mode: 'query' }, 'invalid_request')
  await refused({ response_mode: '' }, 'invalid_request')
  await refused({ response_mode: 'fragment', scope: 'email' }, 'invalid_request')
  await refused({ client_id: bundleId }, 'invalid_client')
  await refused({ redirect_uri: `${redirectUri}/` }, 'invalid_request')
  await refused({ code_challenge: pkce().challenge, code_challenge_method: 'plain' }, 'invalid_request')
  await t.rejects(emulator.authorize(authorizationUrl({ response_mode: 'query' }), account()), /HTTP 400/)

  // Without scopes any mode goes: query mode is a plain redirect.
  const query = await emulator.authorize(authorizationUrl({ scope: '', response_mode: 'query' }), account())
  t.equal(query.action, redirectUri)
  t.same(Object.keys(query.fields).sort(), ['code', 'state'])
})

t.test('web sign-in: form_post, PKCE, ID token with string booleans; a code is single use', async (t) => {
  const { verifier, challenge } = pkce()
  const user = account()
  const url = authorizationUrl({ response_type: 'code id_token', nonce: 'n-0S6', code_challenge: challenge, code_challenge_method: 'S256' })
  const callback = await emulator.authorize(url, user)
  t.equal(callback.action, redirectUri)
  t.equal(callback.fields.state, 'st-1')
  t.same(JSON.parse(callback.fields.user!), { name: { firstName: 'Ada', lastName: 'Lovelace' }, email: user.email })
  t.equal((await verify(callback.fields.id_token!, servicesId)).nonce, 'n-0S6')

  const code = callback.fields.code!
  const exchange = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }
  const answer = await token(exchange)
  t.equal(answer.status, 200)
  t.match(answer.body, { token_type: 'Bearer', expires_in: 3600, access_token: String, refresh_token: String, id_token: String })
  const claims = await verify(answer.body!.id_token as string, servicesId)
  t.match(claims, { sub: user.sub, nonce: 'n-0S6', email: user.email, email_verified: 'true', is_private_email: 'true', nonce_supported: 'true' })
  t.equal(claims.exp! - claims.iat!, 600)
  t.type(claims.auth_time, 'number')
  t.notOk('real_user_status' in claims, 'web tokens carry no real_user_status')
  t.equal(jose.decodeProtectedHeader(answer.body!.id_token as string).alg, 'RS256')

  t.same((await token(exchange)).body, { error: 'invalid_grant' }, 'the same code again')
  t.match(emulator.tokenRequests().slice(-2), [{ clientId: servicesId, grantType: 'authorization_code', outcome: 'ok', clientSecretIat: Number }, { outcome: 'invalid_grant' }])
})

t.test('`user` comes on the first consent only; plain `code` has no id_token', async (t) => {
  const user = account({ booleans: 'boolean', email: 'ada@example.com' })
  t.ok((await emulator.authorize(authorizationUrl({}), user)).fields.user)
  const second = await emulator.authorize(authorizationUrl({}), user)
  t.same(Object.keys(second.fields).sort(), ['code', 'state'])
  const claims = await verify((await token({ grant_type: 'authorization_code', code: second.fields.code!, redirect_uri: redirectUri })).body!.id_token as string, servicesId)
  t.match(claims, { email: 'ada@example.com', email_verified: true, is_private_email: false, nonce_supported: true }, 'booleans as booleans')

  t.same(await emulator.deny(authorizationUrl({})), { action: redirectUri, fields: { error: 'user_cancelled_authorize', state: 'st-1' } })
})

t.test('wrong verifier, missing verifier, other redirect_uri: invalid_grant', async (t) => {
  const { verifier, challenge } = pkce()
  const started = () => emulator.authorize(authorizationUrl({ code_challenge: challenge, code_challenge_method: 'S256' }), account())
  const attempts: Record<string, string>[] = [
    { code_verifier: pkce().verifier, redirect_uri: redirectUri },
    { redirect_uri: redirectUri },
    { code_verifier: verifier, redirect_uri: 'http://127.0.0.1:3999/other' },
    { code_verifier: verifier },
  ]
  for (const attempt of attempts) {
    const { fields } = await started()
    const answer = await token({ grant_type: 'authorization_code', code: fields.code!, ...attempt })
    t.same([answer.status, answer.body], [400, { error: 'invalid_grant' }], JSON.stringify(attempt))
  }
})

t.test('every client_secret fault is invalid_client, and does not spend the code', async (t) => {
  const { fields } = await emulator.authorize(authorizationUrl({ scope: '', response_mode: 'query' }), account())
  const other = await jose.generateKeyPair('ES256')
  const now = Math.floor(Date.now() / 1000)
  const secrets: Record<string, Promise<string>> = {
    'wrong signature': clientSecret(servicesId, { key: other.privateKey }),
    'wrong iss': clientSecret(servicesId, { iss: 'OTHERTEAM1' }),
    'bundle id secret for a web code': clientSecret(bundleId),
    'aud = the emulator URL': clientSecret(servicesId, { aud: emulator.issuer }),
    'wrong kid': clientSecret(servicesId, { kid: 'OTHERKEY01' }),
    expired: clientSecret(servicesId, { iat: now - 7200, exp: now - 10 }),
    'exp - iat too long': clientSecret(servicesId, { iat: now, exp: now + 15_777_001 }),
    'iat in the future': clientSecret(servicesId, { iat: now + 300, exp: now + 3600 }),
    'not a JWT': Promise.resolve('secret'),
  }
  const form = { client_id: servicesId, grant_type: 'authorization_code', code: fields.code!, redirect_uri: redirectUri }
  for (const [label, secret] of Object.entries(secrets)) {
    const answer = await post('/auth/token', { ...form, client_secret: await secret })
    t.same([answer.status, answer.body], [400, { error: 'invalid_client' }], label)
  }
  t.equal(emulator.tokenRequests().at(-1)!.outcome, 'invalid_client')
  const longest = await clientSecret(servicesId, { iat: now, exp: now + 15_777_000 })
  t.equal((await post('/auth/token', { ...form, client_secret: longest })).status, 200, 'the code still works, with a six-month secret')
})

t.test('native sign-in: identityToken for the bundle id, code exchanged as the bundle id', async (t) => {
  const user = account({ realUserStatus: 1 })
  const rawNonce = randomBytes(16).toString('hex')
  const hashed = createHash('sha256').update(rawNonce).digest('hex')
  const first = await emulator.nativeSignIn(bundleId, user, { nonce: hashed })
  t.same(first.fullName, { givenName: 'Ada', familyName: 'Lovelace' })
  t.equal(first.email, user.email)
  const identity = await verify(first.identityToken, bundleId)
  t.match(identity, { sub: user.sub, nonce: hashed, real_user_status: 1, email: user.email, email_verified: 'true' })

  t.same((await token({ grant_type: 'authorization_code', code: first.authorizationCode })).body, { error: 'invalid_grant' }, 'not as the Services ID')
  const again = await emulator.nativeSignIn(bundleId, user)
  t.notOk(again.fullName ?? again.email, 'name and email on the first sign-in only')
  const answer = await token({ grant_type: 'authorization_code', code: again.authorizationCode }, bundleId)
  t.equal(answer.status, 200)
  const claims = await verify(answer.body!.id_token as string, bundleId)
  t.equal(claims.sub, user.sub)
  t.notOk('real_user_status' in claims)
  await t.rejects(emulator.nativeSignIn('com.example.unknown', user), /bundle id/)
})

t.test('refresh, then revoke: the refresh token is dead and the next sign-in is a first one', async (t) => {
  const user = account()
  const { fields } = await emulator.authorize(authorizationUrl({}), user)
  const { refresh_token: refreshToken } = (await token({ grant_type: 'authorization_code', code: fields.code!, redirect_uri: redirectUri })).body as { refresh_token: string }

  const refreshed = await token({ grant_type: 'refresh_token', refresh_token: refreshToken })
  t.match(refreshed.body, { token_type: 'Bearer', access_token: String, id_token: String })
  t.notOk('refresh_token' in refreshed.body!, 'Apple keeps the refresh token')
  t.equal((await verify(refreshed.body!.id_token as string, servicesId)).sub, user.sub)
  t.same((await token({ grant_type: 'refresh_token', refresh_token: refreshToken }, bundleId)).body, { error: 'invalid_grant' }, 'another client')

  const revoke = { client_id: servicesId, token: refreshToken, token_type_hint: 'refresh_token' }
  t.same((await post('/auth/revoke', { ...revoke, client_secret: await clientSecret(bundleId) })).body, { error: 'invalid_client' })
  const revoked = await post('/auth/revoke', { ...revoke, client_secret: await clientSecret() })
  t.same([revoked.status, revoked.text], [200, ''])
  t.same(emulator.revocations().at(-1), { clientId: servicesId, token: refreshToken, tokenTypeHint: 'refresh_token' })
  t.same((await token({ grant_type: 'refresh_token', refresh_token: refreshToken })).body, { error: 'invalid_grant' })
  t.equal((await post('/auth/revoke', { client_id: servicesId, client_secret: await clientSecret(), token: 'unknown' })).status, 200, 'RFC 7009')
  t.ok((await emulator.authorize(authorizationUrl({}), user)).fields.user, 'user comes again')
})

t.test('fail(): one status answer, or a hang', async (t) => {
  emulator.fail('token', { kind: 'status', status: 503, body: { error: 'temporarily_unavailable' } })
  const faulted = await token({ grant_type: 'refresh_token', refresh_token: 'x' })
  t.same([faulted.status, faulted.body], [503, { error: 'temporarily_unavailable' }])
  t.equal(emulator.tokenRequests().at(-1)!.outcome, 'temporarily_unavailable')
  t.same((await token({ grant_type: 'refresh_token', refresh_token: 'x' })).body, { error: 'invalid_grant' }, 'the next call is normal')

  emulator.fail('keys', { kind: 'hang' })
  await t.rejects(fetch(`${emulator.issuer}/auth/keys`, { signal: AbortSignal.timeout(300) }), { name: 'TimeoutError' })
  t.equal((await fetch(`${emulator.issuer}/auth/keys`)).status, 200)
  emulator.fail('revoke', { kind: 'status', status: 500 })
  t.equal((await post('/auth/revoke', { client_id: servicesId, client_secret: await clientSecret(), token: 'x' })).status, 500)
})

t.test('a browser gets a sign-in page, then a self-submitting form_post', async (t) => {
  const res = await fetch(authorizationUrl({}))
  const html = await res.text()
  t.match(html, 'Emulated Apple sign-in')
  for (const field of ['sub', 'email', 'first_name', 'last_name']) t.match(html, `name="${field}"`)
  const action = /<form method="post" action="([^"]+)"/.exec(html)![1]!
  const requestId = /name="request" value="([^"]+)"/.exec(html)![1]!
  const answer = await fetch(new URL(action, emulator.issuer), {
    method: 'POST',
    body: new URLSearchParams({ request: requestId, action: 'continue', sub: '000999.abc.0001', email: 'me@example.com', email_verified: 'true' }),
  })
  const page = await answer.text()
  t.match(page, `<form method="post" action="${redirectUri}">`)
  t.match(page, /<input type="hidden" name="code" value="[^"]+">/)
  t.match(page, 'document.forms[0].submit()')

  const big = await fetch(`${emulator.issuer}/auth/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'x'.repeat(70_000) }) })
  t.equal(big.status, 413, 'bodies over 64 KiB are refused')
})
