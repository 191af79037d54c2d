// Google (the generic OpenID Connect adapter) when things go wrong: a reused code, a user
// without email, and a provider that is down, hangs or answers nonsense. Each failure is
// a typed answer (401, 502, 504) and creates nobody.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { loginWithGoogle, REDIRECT_URI, startTestGateway } from '../support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite', env: { SIGNUP_REQUIRED_FIELDS: 'nickname,email' } })
t.teardown(() => gateway.close())

t.test('a reused authorization code is refused and creates nobody', async (t) => {
  const start = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const code = await gateway.codeFor(start.json().authorizationUrl, { sub: 'reused', name: 'Reu', email: 'reu@example.com' })
  const first = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, state: start.json().state, redirectUri: REDIRECT_URI } })
  t.equal(first.statusCode, 200)
  const users = await gateway.database.prisma.user.count()
  // A second login/start gives a fresh state; the code is the spent one.
  const again = await gateway.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const reused = await gateway.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, state: again.json().state, redirectUri: REDIRECT_URI } })
  t.equal(reused.statusCode, 401)
  t.equal(reused.json().error, 'invalid_grant')
  t.equal(await gateway.database.prisma.user.count(), users)
})

t.test('a user without a verified email must give one when SIGNUP_REQUIRED_FIELDS asks for it', async (t) => {
  const noEmail = await loginWithGoogle(gateway, { sub: 'no-email', name: 'Nomi' })
  t.match(noEmail.json(), { status: 'signup_required', missing: ['email'], profile: { nickname: 'Nomi' } })
  const unverified = await loginWithGoogle(gateway, { sub: 'unverified', name: 'Una', email: 'una@example.com', email_verified: false })
  t.match(unverified.json(), { status: 'signup_required', missing: ['email'] }, 'an unverified email is not taken')
  t.notOk(unverified.json().profile.email)
})

/** A provider stand-in on loopback that misbehaves in one chosen way. */
async function misbehavingProvider(behaviour: 'hang' | 'html' | 'huge'): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    if (behaviour === 'hang') return // accept, never answer
    if (behaviour === 'html') return response.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>')
    response.writeHead(200, { 'content-type': 'application/json' }).end(`{"issuer":"x","pad":"${'x'.repeat(200_000)}"}`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

t.test('Google down, hanging or answering nonsense: 502/504, bounded, nobody created', async (t) => {
  const closed = await misbehavingProvider('html')
  const closedUrl = closed.url
  await new Promise((resolve) => closed.server.close(resolve))
  const cases: [string, string, number, string][] = []
  cases.push(['down (connection refused)', closedUrl, 502, 'provider_error'])
  for (const [behaviour, status, error] of [['hang', 504, 'provider_timeout'], ['html', 502, 'provider_error'], ['huge', 502, 'provider_error']] as const) {
    const provider = await misbehavingProvider(behaviour)
    t.teardown(() => provider.server.closeAllConnections())
    t.teardown(() => provider.server.close())
    cases.push([behaviour, provider.url, status, error])
  }
  for (const [what, issuer, status, error] of cases) {
    const broken = await startTestGateway({ database: 'pglite', env: { GOOGLE_ISSUER: issuer, PROVIDER_HTTP_TIMEOUT: '1' } })
    const started = Date.now()
    const start = await broken.app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
    const elapsed = Date.now() - started
    t.equal(start.statusCode, status, `${what}: ${status}`)
    t.equal(start.json().error, error, what)
    t.ok(elapsed < 5000, `${what}: answered in ${elapsed} ms, well under openid-client's 30 s default`)
    const login = await broken.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code: 'c', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) } })
    t.equal(login.statusCode, status, `${what}: a login too`)
    t.equal(await broken.database.prisma.user.count(), 0, `${what}: nobody created`)
    await broken.close()
  }
})

t.test('a profile with characters it may not hold: the field counts as missing, the user is asked and logs in afterwards', async (t) => {
  // PostgreSQL cannot store U+0000: before, this user got a 500 at every login, for ever.
  const nul = { sub: 'nul-name', name: 'Ann\u0000', email: 'ann@example.com' }
  const first = await loginWithGoogle(gateway, nul)
  t.equal(first.statusCode, 200, first.body)
  t.match(first.json(), { status: 'signup_required', missing: ['nickname'], profile: { email: 'ann@example.com' } })
  t.notOk('nickname' in first.json().profile, 'the name with U+0000 is not offered')
  const signup = await gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: first.json().signupToken, nickname: 'Ann' } })
  t.equal(signup.statusCode, 201, signup.body)
  const again = await loginWithGoogle(gateway, nul)
  t.match(again.json(), { status: 'authenticated', isNewUser: false, user: { id: signup.json().user.id, nickname: 'Ann' } }, 'the next login finds the account')

  const hostile = await loginWithGoogle(gateway, { sub: 'hostile-profile', name: '\u202eevil', email: 'ev\u200bil@example.com', picture: 'https://example.com/\u0000.png' })
  t.match(hostile.json(), { status: 'signup_required', missing: ['nickname', 'email'] }, hostile.body)
  t.same(hostile.json().profile, {}, 'a bidi-override name, a zero-width email and a U+0000 photo are all left out')

  const normalised = await loginWithGoogle(gateway, { sub: 'nfc-profile', name: 'Jose\u0301', email: 'JOSE\u0301@Example.com' })
  t.match(normalised.json(), { status: 'authenticated', user: { nickname: 'Jos\u00e9', email: 'jos\u00e9@example.com' } }, 'provider text is taken in NFC too')
})
