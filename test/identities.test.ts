// Several providers on one account: a user links another identity by proving it (any login
// credential, or the redirect flow on the web) and unlinks one. An identity that belongs to
// someone else is never moved or merged, an account keeps at least one identity, races are
// decided by the database, and every link and unlink is audited.
// The second provider, "work", is a generic OpenID Connect provider (a second emulator).

import { randomUUID } from 'node:crypto'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import * as oidc from 'openid-client'
import t from 'tap'
import { startGoogleEmulator, type EmulatedAccount } from '../emulators/google.js'
import { APP_ORIGIN, GOOGLE_CLIENT, PUBLIC_URL, REDIRECT_URI, startTestGateway, type GatewayUnderTest } from './support/gateway.js'

const WORK = { clientId: 'work-client', clientSecret: 'work-secret' }
const work = await startGoogleEmulator({ ...WORK, redirectUris: [REDIRECT_URI, `${PUBLIC_URL}/auth/callback/work`] })
const env = { OIDC_WORK_ISSUER: work.issuer, OIDC_WORK_CLIENT_ID: WORK.clientId, OIDC_WORK_CLIENT_SECRET: WORK.clientSecret }
const gateway = await startTestGateway({ database: 'pglite', env })
// PGlite runs one statement at a time: the races run on PostgreSQL too, where they interleave.
const postgres = await startTestGateway({ database: 'postgresql', env })
t.teardown(async () => {
  await Promise.all([gateway.close(), postgres.close()])
  await work.stop()
})
const { app } = gateway
const { prisma } = gateway.database
const RETURN_TO = `${APP_ORIGIN}/settings`
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

type Provider = 'google' | 'work'
type Identity = { id: string; provider: string; linkedAt: string; email?: string }
const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })

/** What users do at one gateway, natively: log in, link, unlink, look at their account. */
function usersOf(gateway: GatewayUnderTest) {
  const { app } = gateway
  const emulators = { google: gateway.google, work }
  const clientIds = { google: GOOGLE_CLIENT.clientId, work: WORK.clientId }

  /** What the provider's native SDK hands the app: a fresh ID token for `sub` (never used before). */
  async function idToken(provider: Provider, sub: string, email?: string): Promise<string> {
    const emulator = emulators[provider]
    const now = Math.floor(Date.now() / 1000)
    const claims = { iss: emulator.issuer, aud: clientIds[provider], sub, iat: now, exp: now + 600, jti: randomUUID(), name: `User ${sub}` }
    return emulator.signIdToken(email ? { ...claims, email, email_verified: true } : claims)
  }
  const login = async (provider: Provider, sub: string) =>
    app.inject({ method: 'POST', url: '/auth/login', payload: { provider, idToken: await idToken(provider, sub) } })

  /** A native login: the new or returning user's tokens and public id. */
  async function signIn(provider: Provider, sub: string) {
    const response = await login(provider, sub)
    if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
    const body = response.json()
    return { accessToken: body.accessToken as string, refreshToken: body.refreshToken as string, userId: body.user.id as string }
  }

  async function me(accessToken: string): Promise<{ id: string; identities: Identity[] }> {
    const response = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })
    if (response.statusCode !== 200) throw new Error(`/auth/me failed: ${response.statusCode} ${response.body}`)
    return response.json()
  }

  return {
    idToken,
    login,
    signIn,
    me,
    providersOf: async (accessToken: string) => (await me(accessToken)).identities.map((identity) => identity.provider),
    link: async (accessToken: string, provider: Provider, sub: string, email?: string) =>
      app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(accessToken), payload: { provider, idToken: await idToken(provider, sub, email) } }),
    unlink: (accessToken: string, identityId: string) => app.inject({ method: 'DELETE', url: `/auth/identities/${identityId}`, headers: bearer(accessToken) }),
    /** The owner of an identity, as the database has it. */
    ownerOf: async (provider: Provider, subject: string) =>
      (await gateway.database.prisma.identity.findUnique({ where: { provider_subject: { provider, subject } }, include: { user: true } }))?.user.publicId,
    rowsOf: (provider: Provider, subject: string) => gateway.database.prisma.identity.count({ where: { provider, subject } }),
  }
}
const { idToken, login, signIn, me, providersOf, link, unlink, ownerOf } = usersOf(gateway)

const startLink = (accessToken: string, payload: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/auth/identities/start', headers: { ...bearer(accessToken), origin: APP_ORIGIN }, payload })

/** Every identity row as the database has it: "provider:subject" → the owner's public id and the identity id. */
async function owners(): Promise<Record<string, string>> {
  const rows = await prisma.identity.findMany({ include: { user: { select: { publicId: true } } }, orderBy: { id: 'asc' } })
  return Object.fromEntries(rows.map((row) => [`${row.provider}:${row.subject}`, `${row.user.publicId} ${row.publicId}`]))
}

const auditOf = (userId: string, action: 'identity.linked' | 'identity.unlinked') =>
  prisma.auditEvent.findMany({ where: { userId, action }, orderBy: { id: 'asc' } })

function cookiesOf(response: LightMyRequestResponse): Record<string, string> {
  return Object.fromEntries(response.cookies.filter((cookie) => cookie.value !== '').map((cookie) => [cookie.name, cookie.value]))
}

/** Starts a web link as the app would, and plays the user at the work provider; returns the callback path and the browser's cookies. */
async function throughWork(accessToken: string, account: EmulatedAccount) {
  const start = await startLink(accessToken, { provider: 'work', returnTo: RETURN_TO })
  if (start.statusCode !== 200) throw new Error(`identities/start failed: ${start.statusCode} ${start.body}`)
  const callback = await work.authorize(start.json().authorizationUrl, account)
  return { start, callbackPath: `${callback.pathname}${callback.search}`, cookies: cookiesOf(start) }
}

t.test('a user links a work account and then has two ways in', async (t) => {
  const ann = await signIn('google', 'ann-google')
  const linked = await link(ann.accessToken, 'work', 'ann-work', 'ann@work.example')
  t.equal(linked.statusCode, 201, { body: linked.body })
  const identities = linked.json().identities as Identity[]
  t.same(identities.map((identity) => identity.provider), ['google', 'work'], 'all of her identities, oldest first')
  t.ok(identities.every((identity) => UUID.test(identity.id) && !Number.isNaN(Date.parse(identity.linkedAt))), 'opaque ids, real dates')
  t.equal(identities[1]!.email, 'ann@work.example', 'the address the provider vouched for')
  t.same(await me(ann.accessToken), { id: ann.userId, nickname: 'User ann-google', identities }, '/auth/me shows the same')

  const viaWork = (await login('work', 'ann-work')).json()
  t.equal(viaWork.user.id, ann.userId, 'the work identity logs into her account')
  t.equal(viaWork.isNewUser, false)

  const audit = await auditOf(ann.userId, 'identity.linked')
  t.same(audit.map((event) => [event.outcome, event.target, event.detail, event.actor]), [['success', `identity:${identities[1]!.id}`, 'work', 'user']])
})

t.test('a link takes a code as /auth/login does: with the state of /auth/login/start, or with its own PKCE', async (t) => {
  const ben = await signIn('google', 'ben-google')
  const start = (await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'work', redirectUri: REDIRECT_URI } })).json()
  const code = (await work.authorize(start.authorizationUrl, { sub: 'ben-work', name: 'Ben' })).searchParams.get('code')
  const withState = await app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(ben.accessToken), payload: { provider: 'work', code, redirectUri: REDIRECT_URI, state: start.state } })
  t.equal(withState.statusCode, 201, { body: withState.body })
  t.equal(await ownerOf('work', 'ben-work'), ben.userId)

  const cleo = await signIn('google', 'cleo-google')
  const configuration = await oidc.discovery(new URL(work.issuer), WORK.clientId, WORK.clientSecret, undefined, { execute: [oidc.allowInsecureRequests] })
  const codeVerifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const authorizationUrl = oidc.buildAuthorizationUrl(configuration, {
    redirect_uri: REDIRECT_URI, scope: 'openid email profile', code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256', nonce,
  })
  const ownCode = (await work.authorize(authorizationUrl, { sub: 'cleo-work', name: 'Cleo' })).searchParams.get('code')
  const withVerifier = await app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(cleo.accessToken), payload: { provider: 'work', code: ownCode, redirectUri: REDIRECT_URI, codeVerifier, nonce } })
  t.equal(withVerifier.statusCode, 201, { body: withVerifier.body })
  t.equal(await ownerOf('work', 'cleo-work'), cleo.userId)
})

t.test("linking someone else's identity is refused, and nothing moves or merges", async (t) => {
  const bob = await signIn('google', 'bob-google')
  const carol = await signIn('work', 'carol-work')
  const [bobBefore, carolBefore, rowsBefore] = [await me(bob.accessToken), await me(carol.accessToken), await owners()]

  const refused = await link(bob.accessToken, 'work', 'carol-work')
  t.equal(refused.statusCode, 409)
  t.equal(refused.json().error, 'identity_already_linked')
  t.same(await me(bob.accessToken), bobBefore, "Bob's account is unchanged")
  t.same(await me(carol.accessToken), carolBefore, "Carol's account is unchanged")
  t.same(await owners(), rowsBefore, 'the database has the same identities with the same owners')
  t.equal((await login('work', 'carol-work')).json().user.id, carol.userId, 'the work identity still logs into Carol')

  const audit = await auditOf(bob.userId, 'identity.linked')
  t.same(audit.map((event) => event.outcome), ['denied'], 'the refused link is audited')
  t.match(audit[0]!.detail, /^work: identity_already_linked$/)
})

t.test('one identity per provider: a second one, or re-linking your own, is refused', async (t) => {
  const dan = await signIn('google', 'dan-google')
  t.equal((await link(dan.accessToken, 'work', 'dan-work-1')).statusCode, 201)
  const before = await owners()
  for (const [what, provider, sub] of [['another work identity', 'work', 'dan-work-2'], ['his own work identity again', 'work', 'dan-work-1'], ['his own google identity', 'google', 'dan-google']] as const) {
    const refused = await link(dan.accessToken, provider, sub)
    t.equal(refused.statusCode, 409, what)
    t.equal(refused.json().error, 'provider_already_linked', what)
  }
  t.same(await owners(), before, 'nothing was written')
  t.same(await providersOf(dan.accessToken), ['google', 'work'])
  t.equal(await ownerOf('work', 'dan-work-2'), undefined, 'the second work identity belongs to nobody')
  const audit = await auditOf(dan.userId, 'identity.linked')
  t.same(audit.map((event) => [event.outcome, event.detail]), [['success', 'work'], ...['work', 'work', 'google'].map((provider) => ['denied', `${provider}: provider_already_linked`])])
})

t.test('a web app links through the redirect flow, bound to the browser that started it', async (t) => {
  const erin = await signIn('google', 'erin-google')
  const stolen = await throughWork(erin.accessToken, { sub: 'erin-work', email: 'erin@work.example' })
  const otherBrowser = await app.inject({ method: 'GET', url: stolen.callbackPath })
  t.equal(otherBrowser.statusCode, 400, 'a callback in another browser is refused')
  t.equal(otherBrowser.json().error, 'invalid_state')
  t.equal(await ownerOf('work', 'erin-work'), undefined, 'and links nothing')

  const { start, callbackPath, cookies } = await throughWork(erin.accessToken, { sub: 'erin-work', email: 'erin@work.example' })
  t.equal(new URL(start.json().authorizationUrl).origin, work.issuer, 'the browser goes to the work provider')
  t.ok(cookies['__Secure-login_binding'], 'the flow is bound to this browser by a cookie')
  const callback = await app.inject({ method: 'GET', url: callbackPath, cookies })
  t.equal(callback.statusCode, 302, { body: callback.body })
  t.equal(callback.headers.location, `${RETURN_TO}?linked=work`, 'back to the app, with no token in the URL')
  t.notMatch(String(callback.headers['set-cookie'] ?? ''), /refresh_token=[^;]/, 'no session is set: it is a link, not a login')
  t.equal(await ownerOf('work', 'erin-work'), erin.userId, 'linked to the user who started it')
  t.same((await me(erin.accessToken)).identities.map((identity) => [identity.provider, identity.email]), [['google', undefined], ['work', 'erin@work.example']])
})

t.test("a redirect-flow link of someone else's identity returns link_error, and nothing changes", async (t) => {
  const frank = await signIn('google', 'frank-google')
  const gina = await signIn('work', 'gina-work')
  const before = await owners()
  const { callbackPath, cookies } = await throughWork(frank.accessToken, { sub: 'gina-work' })
  const callback = await app.inject({ method: 'GET', url: callbackPath, cookies })
  t.equal(callback.statusCode, 302)
  t.equal(callback.headers.location, `${RETURN_TO}?link_error=identity_already_linked`)
  t.same(await owners(), before)
  t.equal(await ownerOf('work', 'gina-work'), gina.userId)

  const open = await startLink(frank.accessToken, { provider: 'work', returnTo: 'https://evil.example/steal' })
  t.equal(open.statusCode, 400, 'returnTo must be on an allowed web origin')
  t.equal(open.json().error, 'invalid_request')
})

t.test('unlinking: the identity is gone, and logging in with it again makes a new account', async (t) => {
  const hank = await signIn('google', 'hank-google')
  const [google, workIdentity] = (await link(hank.accessToken, 'work', 'hank-work')).json().identities as Identity[]
  const unlinked = await unlink(hank.accessToken, workIdentity!.id)
  t.equal(unlinked.statusCode, 204, { body: unlinked.body })
  t.same(await providersOf(hank.accessToken), ['google'])
  t.equal(await prisma.identity.count({ where: { publicId: workIdentity!.id } }), 0, 'the row is gone')
  const audit = await auditOf(hank.userId, 'identity.unlinked')
  t.same(audit.map((event) => [event.outcome, event.target, event.detail]), [['success', `identity:${workIdentity!.id}`, 'work']])

  const again = (await login('work', 'hank-work')).json()
  t.equal(again.isNewUser, true, 'the work identity is a new account now')
  t.not(again.user.id, hank.userId)

  const last = await unlink(hank.accessToken, google!.id)
  t.equal(last.statusCode, 409)
  t.equal(last.json().error, 'last_identity')
  t.same(await providersOf(hank.accessToken), ['google'], 'the only identity stays')

  const ivy = await signIn('google', 'ivy-google')
  for (const [what, id] of [["another user's identity", google!.id], ['an unknown id', randomUUID()]] as const) {
    const foreign = await unlink(ivy.accessToken, id)
    t.equal(foreign.statusCode, 404, what)
    t.equal(foreign.json().error, 'not_found', what)
  }
  t.same(await providersOf(hank.accessToken), ['google'], "Hank's identity was not touched")
  const malformed = await unlink(hank.accessToken, 'not-a-uuid')
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().error, 'invalid_request')
})

for (const [database, under] of [['PGlite', gateway], ['PostgreSQL', postgres]] as const) {
  const { login, signIn, me, providersOf, link, unlink, ownerOf, rowsOf } = usersOf(under)

  t.test(`two users linking one new identity at once: exactly one gets it (${database})`, async (t) => {
    const [jack, kate] = await Promise.all([signIn('google', 'jack-google'), signIn('google', 'kate-google')])
    const answers = await Promise.all([link(jack.accessToken, 'work', 'contested'), link(kate.accessToken, 'work', 'contested')])
    t.same(answers.map((answer) => answer.statusCode).sort(), [201, 409], { bodies: answers.map((answer) => answer.body) })
    t.equal(answers.find((answer) => answer.statusCode === 409)?.json().error, 'identity_already_linked')
    t.equal(await rowsOf('work', 'contested'), 1, 'one row')
    const winner = answers[0]!.statusCode === 201 ? jack : kate
    t.equal(await ownerOf('work', 'contested'), winner.userId, 'owned by the user who was told 201')
  })

  t.test(`a link racing the first login of that identity: one owner, and both answers agree (${database})`, async (t) => {
    // The login sets off 0 to 7 ms after the link: sent together the login wins, a few ms
    // later the link does, and the rounds in between overlap in the database.
    for (let round = 0; round < 8; round++) {
      const sub = `raced-${round}`
      const linker = await signIn('google', `linker-${round}`)
      const lateLogin = new Promise((resolve) => setTimeout(resolve, round)).then(() => login('work', sub))
      const [linked, loggedIn] = await Promise.all([link(linker.accessToken, 'work', sub), lateLogin])
      t.equal(loggedIn.statusCode, 200, { body: loggedIn.body })
      t.equal(await rowsOf('work', sub), 1, `${sub}: one row`)
      const owner = await ownerOf('work', sub)
      if (linked.statusCode === 201) {
        t.equal(owner, linker.userId, `${sub}: the link won`)
        t.match(loggedIn.json(), { user: { id: linker.userId }, isNewUser: false }, `${sub}: the login signed into the linker's account`)
      } else {
        t.equal(linked.statusCode, 409, `${sub}: the login won`)
        t.equal(linked.json().error, 'identity_already_linked')
        t.match(loggedIn.json(), { user: { id: owner }, isNewUser: true }, `${sub}: the login made the account that owns it`)
        t.same(await providersOf(linker.accessToken), ['google'], `${sub}: the linker got nothing`)
      }
    }
  })

  t.test(`two parallel unlinks of a user's two identities: one wins, one identity stays (${database})`, async (t) => {
    for (let round = 0; round < 5; round++) {
      const user = await signIn('google', `unlinker-${round}`)
      const identities = (await link(user.accessToken, 'work', `unlinker-${round}`)).json().identities as Identity[]
      const answers = await Promise.all(identities.map((identity) => unlink(user.accessToken, identity.id)))
      t.same(answers.map((answer) => answer.statusCode).sort(), [204, 409], { bodies: answers.map((answer) => answer.body) })
      t.equal(answers.find((answer) => answer.statusCode === 409)?.json().error, 'last_identity')
      const kept = identities[answers.findIndex((answer) => answer.statusCode === 409)]
      t.same((await me(user.accessToken)).identities.map((identity) => identity.id), [kept?.id], 'the user keeps the one that was refused')
      t.equal((await rowsOf('google', `unlinker-${round}`)) + (await rowsOf('work', `unlinker-${round}`)), 1, 'one row is left')
    }
  })
}

t.test('bad input to every new endpoint is a 4xx JSON error and writes nothing', async (t) => {
  const mia = await signIn('google', 'mia-google')
  const token = await idToken('work', 'mia-work')
  const mias = { ...bearer(mia.accessToken), origin: APP_ORIGIN }
  const post = (url: string, payload: unknown, headers: Record<string, string> = mias): InjectOptions =>
    ({ method: 'POST', url, headers, ...(typeof payload === 'string' ? { body: payload } : { payload: payload as Record<string, unknown> }) })
  const json = { ...mias, 'content-type': 'application/json' }
  const cases: [string, InjectOptions, number, string?][] = [
    ['link without a bearer', post('/auth/identities', { provider: 'work', idToken: token }, {}), 401, 'invalid_token'],
    ['start without a bearer', post('/auth/identities/start', { provider: 'work', returnTo: RETURN_TO }, { origin: APP_ORIGIN }), 401, 'invalid_token'],
    ['unlink without a bearer', { method: 'DELETE', url: `/auth/identities/${randomUUID()}` }, 401, 'invalid_token'],
    ['link with an unknown field', post('/auth/identities', { provider: 'work', idToken: token, userId: 'someone' }), 400, 'invalid_request'],
    ['link with two credentials', post('/auth/identities', { provider: 'work', idToken: token, accessToken: 'also' }), 400, 'invalid_request'],
    ['link with an unknown provider', post('/auth/identities', { provider: 'myspace', idToken: token }), 400, 'unsupported_provider'],
    ['link with no credential', post('/auth/identities', { provider: 'work' }), 400, 'invalid_request'],
    ['link with a non-JSON body', post('/auth/identities', 'provider=work', { ...mias, 'content-type': 'text/plain' }), 415],
    ['link with broken JSON', post('/auth/identities', '{"provider":', json), 400, 'invalid_request'],
    ['link with a NUL byte', post('/auth/identities', JSON.stringify({ provider: 'work', idToken: `${token}\u0000` }), json), 400, 'invalid_request'],
    ['link with an oversized idToken', post('/auth/identities', { provider: 'work', idToken: 'x'.repeat(8193) }), 400, 'invalid_request'],
    ['link with an oversized provider', post('/auth/identities', { provider: 'w'.repeat(65), idToken: token }), 400, 'invalid_request'],
    ['start with an unknown field', post('/auth/identities/start', { provider: 'work', returnTo: RETURN_TO, linkUserId: 'x' }), 400, 'invalid_request'],
    ['start with an unknown provider', post('/auth/identities/start', { provider: 'myspace', returnTo: RETURN_TO }), 400, 'unsupported_provider'],
    ['start with a NUL byte', post('/auth/identities/start', JSON.stringify({ provider: 'work', returnTo: `${RETURN_TO}\u0000` }), json), 400, 'invalid_request'],
    ['start with an oversized returnTo', post('/auth/identities/start', { provider: 'work', returnTo: `${RETURN_TO}?${'x'.repeat(2048)}` }), 400, 'invalid_request'],
    ['start with a non-JSON body', post('/auth/identities/start', 'provider=work', { ...mias, 'content-type': 'text/plain' }), 415],
    ['unlink a malformed id', { method: 'DELETE', url: '/auth/identities/1', headers: mias }, 400, 'invalid_request'],
  ]
  const footprint = async () => ({
    identities: await owners(),
    audit: await prisma.auditEvent.count({ where: { action: { in: ['identity.linked', 'identity.unlinked'] } } }),
    redis: (await gateway.redis.keys('*')).filter((key) => !key.startsWith('gw:rate:')).sort(),
  })
  const before = await footprint()
  for (const [what, request, status, error] of cases) {
    const response = await app.inject(request)
    t.equal(response.statusCode, status, `${what}: ${response.body}`)
    t.match(String(response.headers['content-type']), /^application\/json/, `${what}: JSON`)
    t.match(response.json(), { error: error ?? String, message: String }, `${what}: { error, message }`)
  }
  t.same(await footprint(), before, 'nothing was written anywhere')

  const loggedOut = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: mia.refreshToken } })
  t.equal(loggedOut.statusCode, 204)
  for (const request of [post('/auth/identities', { provider: 'work', idToken: token }), post('/auth/identities/start', { provider: 'work', returnTo: RETURN_TO }), { method: 'DELETE', url: `/auth/identities/${randomUUID()}`, headers: mias } as InjectOptions]) {
    const response = await app.inject(request)
    t.equal(response.statusCode, 401, `${request.method} ${request.url} with a logged-out session`)
    t.equal(response.json().error, 'invalid_token')
  }
  t.equal(await ownerOf('work', 'mia-work'), undefined, 'and the unused work token linked nothing')

  // The control: the very same token, sent well, links.
  const again = await signIn('google', 'mia-google')
  const control = await app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(again.accessToken), payload: { provider: 'work', idToken: token } })
  t.equal(control.statusCode, 201, { body: control.body })
})
