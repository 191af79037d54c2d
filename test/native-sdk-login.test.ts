// Native apps log in with the ID token their provider SDK gave them. The gateway verifies
// it against the provider's published keys, with an audience allow-list (web, Android and
// iOS client ids differ), checks the nonce, and accepts each token once.

import * as jose from 'jose'
import t from 'tap'
import { GOOGLE_CLIENT, googleSdkIdToken, REDIRECT_URI, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const login = (payload: Record<string, unknown>) => gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', ...payload } })

t.test('a genuine SDK ID token logs in, once', async (t) => {
  const { idToken, nonce } = await googleSdkIdToken(gateway, { sub: 'sdk-1', name: 'Sid', email: 'sid@example.com' })
  const first = await login({ idToken, nonce })
  t.equal(first.statusCode, 200, { body: first.body })
  t.match(first.json(), { status: 'authenticated', isNewUser: true, user: { nickname: 'Sid', email: 'sid@example.com' } })
  const replay = await login({ idToken, nonce })
  t.equal(replay.statusCode, 401, 'the same ID token cannot be replayed')
  t.equal(replay.json().error, 'invalid_grant')
})

t.test('a nonce that does not match, or is left out, is refused and creates nobody', async (t) => {
  const users = await gateway.database.prisma.user.count()
  // Each case brings its own never-used token: a spent one is refused as a replay whatever
  // its nonce, and would hide a missing nonce check.
  const cases = [
    ['wrong nonce', (nonce: string) => ({ nonce: `${nonce}-not` })],
    ['the token carries a nonce the client did not send', () => ({})],
  ] as const
  for (const [what, nonceSent] of cases) {
    const sdk = await googleSdkIdToken(gateway, { sub: 'sdk-nonce', name: 'Nona' })
    const refused = await login({ idToken: sdk.idToken, ...nonceSent(sdk.nonce) })
    t.equal(refused.statusCode, 401, what)
    t.equal(refused.json().error, 'invalid_grant', what)
    t.match(refused.json().message, /nonce does not match/, `${what}: refused for its nonce`)
  }
  t.equal(await gateway.database.prisma.user.count(), users, 'nobody was created')

  // A refusal spends nothing: a fresh token's own nonce logs it in, the same token without it did not.
  const sdk = await googleSdkIdToken(gateway, { sub: 'sdk-nonce', name: 'Nona' })
  t.equal((await login({ idToken: sdk.idToken })).statusCode, 401, 'without its nonce: refused')
  t.equal((await login({ idToken: sdk.idToken, nonce: sdk.nonce })).statusCode, 200, 'with it: the same token logs in')
})

t.test('forged ID tokens are refused', async (t) => {
  const users = await gateway.database.prisma.user.count()
  const claims = { iss: gateway.google.issuer, aud: GOOGLE_CLIENT.clientId, sub: 'forged', name: 'Mallory' }
  const unsigned = `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${jose.base64url.encode(
    JSON.stringify({ ...claims, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300 }),
  )}.`
  const { privateKey } = await jose.generateKeyPair('RS256')
  const foreignKey = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'attacker' }).setIssuedAt().setExpirationTime('5m').sign(privateKey)
  for (const [what, idToken] of [['alg none', unsigned], ['signed by a foreign key', foreignKey], ['garbage', 'not.a.jwt']] as const) {
    const response = await login({ idToken })
    t.equal(response.statusCode, 401, what)
    t.equal(response.json().error, 'invalid_grant', what)
  }
  t.equal(await gateway.database.prisma.user.count(), users, 'nobody was created')
})

t.test('the audience allow-list decides which client ids may bring ID tokens', async (t) => {
  const { idToken, nonce } = await googleSdkIdToken(gateway, { sub: 'sdk-aud', name: 'Aud' })
  const strict = await startTestGateway({ database: 'pglite', env: { GOOGLE_CLIENT_ID: 'web-client-only', GOOGLE_ISSUER: gateway.google.issuer } })
  t.teardown(() => strict.close())
  const foreign = await strict.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken, nonce } })
  t.equal(foreign.statusCode, 401, 'a token for another client id is refused')

  const allowing = await startTestGateway({
    database: 'pglite',
    env: { GOOGLE_CLIENT_ID: 'web-client-only', GOOGLE_ISSUER: gateway.google.issuer, GOOGLE_AUDIENCES: GOOGLE_CLIENT.clientId },
  })
  t.teardown(() => allowing.close())
  const listed = await allowing.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken, nonce } })
  t.equal(listed.statusCode, 200, 'a listed native client id is accepted')
})

t.test('credentials are exclusive and Google takes no access tokens', async (t) => {
  const mixed = await login({ idToken: 'a.b.c', code: 'x', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) })
  t.equal(mixed.statusCode, 400)
  t.match(mixed.json().message, /exactly one credential/)
  const accessToken = await login({ accessToken: 'ya29.token' })
  t.equal(accessToken.statusCode, 400)
  t.match(accessToken.json().message, /does not accept access tokens/)
})
