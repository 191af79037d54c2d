// Provider ID tokens that are validly signed by the provider's key but must still be
// refused with 401 invalid_grant, creating nobody: an empty or unstorable `sub` (every
// empty-sub login would be one account), an `iat` more than 5 minutes ahead, on the code
// flow an `iat` older than 10 minutes, an `exp` more than 24 h after `iat`, and a token
// with several audiences whose `azp` is another party. Native ID tokens (verifyIdToken) and
// code-flow ID tokens (the token endpoint's answer), at Google and at Kakao; each refusal
// has a control just inside the bound that is accepted. And code-flow ID tokens with good
// claims but a signature by a key the provider does not publish.

import t, { type Test } from 'tap'
import { startKakaoEmulator } from '../emulators/kakao.js'
import { GOOGLE_CLIENT, REDIRECT_URI, loginWithGoogle, startTestGateway } from './support/gateway.js'

const KAKAO = { clientId: 'kakao-rest-api-key', clientSecret: 'kakao-client-secret', appId: '1234567' }
const kakao = await startKakaoEmulator({ ...KAKAO, redirectUris: [REDIRECT_URI] })
t.teardown(() => kakao.stop())
const gateway = await startTestGateway({
  database: 'pglite',
  env: { KAKAO_CLIENT_ID: KAKAO.clientId, KAKAO_CLIENT_SECRET: KAKAO.clientSecret, KAKAO_AUTH_URL: kakao.authUrl, KAKAO_API_URL: kakao.apiUrl },
})
t.teardown(() => gateway.close())
const { app, google } = gateway
const prisma = gateway.database.prisma

const MINUTE = 60
const HOUR = 60 * MINUTE
const now = () => Math.floor(Date.now() / 1000)
let serial = 0
const fresh = (what: string) => `${what}-${++serial}`
let nextMember = 7_000_000_000n
const freshMember = () => String(nextMember++)

type Claims = Record<string, unknown>

/** Posts a login and checks: the status, and on a refusal the contract's answer and no new row. */
async function expectLogin(t: Test, what: string, login: () => Promise<{ statusCode: number; body: string; json(): unknown }>, status: 200 | 401) {
  const before = { users: await prisma.user.count(), identities: await prisma.identity.count() }
  const response = await login()
  t.equal(response.statusCode, status, `${what}: ${status} (got ${response.statusCode} ${response.body.slice(0, 200)})`)
  if (status === 401) {
    t.same(response.json(), { error: 'invalid_grant', message: (response.json() as { message: string }).message }, `${what}: invalid_grant`)
    t.same({ users: await prisma.user.count(), identities: await prisma.identity.count() }, before, `${what}: nobody created`)
  } else {
    t.equal((response.json() as { status: string }).status, 'authenticated', `${what}: logged in`)
  }
}

const idTokenLogin = (provider: string, idToken: string) => () =>
  app.inject({ method: 'POST', url: '/auth/login', payload: { provider, idToken } })

// --- native ID tokens -------------------------------------------------------

const googleClaims = (extra: Claims = {}): Claims => {
  const iat = now()
  return { iss: google.issuer, aud: GOOGLE_CLIENT.clientId, sub: fresh('google-native'), name: 'Native', iat, exp: iat + HOUR, ...extra }
}
const kakaoClaims = (extra: Claims = {}): Claims => {
  const iat = now()
  return { iss: kakao.authUrl, aud: KAKAO.clientId, sub: freshMember(), nickname: 'Native', iat, exp: iat + HOUR, ...extra }
}

/** Native cases: [what, claim changes, expected]. Times are relative to now. */
const nativeCases = (): [string, () => Claims, 200 | 401][] => [
  ['an empty sub', () => ({ sub: '' }), 401],
  ['a sub with U+0000', () => ({ sub: 'abc\u0000def' }), 401],
  ['a sub of 256 characters', () => ({ sub: 's'.repeat(256) }), 401],
  ['an iat 6 minutes ahead', () => ({ iat: now() + 6 * MINUTE, exp: now() + HOUR }), 401],
  ['(control) an iat 4 minutes ahead', () => ({ iat: now() + 4 * MINUTE, exp: now() + HOUR }), 200],
  ['an exp 25 hours after iat', () => ({ iat: now(), exp: now() + 25 * HOUR }), 401],
  ['(control) an exp 23 hours after iat', () => ({ iat: now(), exp: now() + 23 * HOUR }), 200],
  // A native app may hold its token a while: only exp bounds its age.
  ['(control) an iat 2 hours ago, still unexpired', () => ({ iat: now() - 2 * HOUR, exp: now() + HOUR }), 200],
]

t.test('native ID tokens: empty or unstorable sub, iat ahead, lifetime over a day → 401', async (t) => {
  for (const [what, change, status] of nativeCases()) {
    await expectLogin(t, `google: ${what}`, idTokenLogin('google', await google.signIdToken(googleClaims(change()))), status)
    await expectLogin(t, `kakao: ${what}`, idTokenLogin('kakao', await kakao.signIdToken(kakaoClaims(change()))), status)
  }
})

t.test('several audiences: azp must be one of ours', async (t) => {
  const aud = [GOOGLE_CLIENT.clientId, 'someone-elses-client']
  await expectLogin(t, 'azp another party', idTokenLogin('google', await google.signIdToken(googleClaims({ aud, azp: 'someone-elses-client' }))), 401)
  await expectLogin(t, 'no azp', idTokenLogin('google', await google.signIdToken(googleClaims({ aud }))), 401)
  await expectLogin(t, '(control) azp our client', idTokenLogin('google', await google.signIdToken(googleClaims({ aud, azp: GOOGLE_CLIENT.clientId }))), 200)
  await expectLogin(t, '(control) one audience, no azp', idTokenLogin('google', await google.signIdToken(googleClaims())), 200)
})

// --- code-flow ID tokens ----------------------------------------------------

/** Code cases: [what, claim changes applied to the provider's genuine token, expected]. */
const codeCases = (): [string, (claims: Claims) => Claims, 200 | 401][] => [
  ['an empty sub', (claims) => ({ ...claims, sub: '' }), 401],
  ['an iat 11 minutes ago', (claims) => ({ ...claims, iat: now() - 11 * MINUTE }), 401],
  ['(control) an iat 9 minutes ago', (claims) => ({ ...claims, iat: now() - 9 * MINUTE }), 200],
  ['an iat 6 minutes ahead', (claims) => ({ ...claims, iat: now() + 6 * MINUTE }), 401],
  ['an exp 25 hours after iat', (claims) => ({ ...claims, exp: (claims.iat as number) + 25 * HOUR }), 401],
  ['(control) the genuine token', (claims) => claims, 200],
]

async function kakaoCodeLogin(id: string) {
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'kakao', redirectUri: REDIRECT_URI } })
  const { authorizationUrl, state } = start.json() as { authorizationUrl: string; state: string }
  const code = new URL(await kakao.authorize(authorizationUrl, { id, nickname: 'Coder' })).searchParams.get('code')
  return app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', code, redirectUri: REDIRECT_URI, state } })
}

t.test('code-flow ID tokens: empty sub, iat too old or ahead, lifetime over a day → 401', async (t) => {
  for (const [what, edit, status] of codeCases()) {
    await expectLogin(t, `google: ${what}`, () => {
      google.tamperNextIdToken(edit)
      return loginWithGoogle(gateway, { sub: fresh('google-code'), name: 'Coder' })
    }, status)
    await expectLogin(t, `kakao: ${what}`, () => {
      kakao.tamperNextIdToken(edit)
      return kakaoCodeLogin(freshMember())
    }, status)
  }
})

t.test('code-flow ID tokens signed by a key the provider does not publish → 401', async (t) => {
  await expectLogin(t, 'google: a forged signature', () => {
    google.tamperNextIdToken((claims) => claims, { forged: true })
    return loginWithGoogle(gateway, { sub: fresh('google-code'), name: 'Coder' })
  }, 401)
  await expectLogin(t, 'kakao: a forged signature', () => {
    kakao.tamperNextIdToken((claims) => claims, { forged: true })
    return kakaoCodeLogin(freshMember())
  }, 401)
  await expectLogin(t, 'google: (control) the same edit, validly signed', () => {
    google.tamperNextIdToken((claims) => claims)
    return loginWithGoogle(gateway, { sub: fresh('google-code'), name: 'Coder' })
  }, 200)
})
