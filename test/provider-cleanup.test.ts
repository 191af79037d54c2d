// A deleted account reaches its providers: after DELETE /auth/me the job worker unlinks the
// Kakao member with the admin key and revokes the grants kept for Naver, Google and Apple,
// each exactly once, with the right credentials, and the kept grants are gone with the
// jobs; unlinking one identity does the same for that provider alone. A provider that is down delays its job, never the user's request, and is retried
// until it answers; every outcome is in the audit trail.

import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { EMULATED_CREDENTIALS } from '../emulators/providers.js'
import { REDIRECT_URI, startTestGateway } from './support/gateway.js'
import { until } from './support/until.js'

// The emulated providers' settings include Kakao's admin key (KAKAO_ADMIN_KEY), as in `npm run dev`.
const gateway = await startTestGateway({ listen: true, database: 'pglite', env: { JOB_RETRY_DELAY_MS: '50' } })
t.teardown(() => gateway.close())
const { app } = gateway
const { prisma } = gateway.database
const { kakao, naver, google, apple } = gateway.emulated!
const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })

/** A person with an account at each provider; their account here is created through Google. */
async function personWithFourProviders(name: string) {
  const kakaoId = String(8_000_000_000n + BigInt(Math.floor(Math.random() * 1e9)))
  const naverAccount = { id: `naver-${randomUUID()}`, nickname: name }
  const appleSub = `001234.${randomBytes(8).toString('hex')}`
  const googleSub = `google-${randomUUID()}`

  // Google through the code flow, as a web app logs in: the gateway keeps the grant it got.
  const start = (await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })).json()
  const code = await gateway.codeFor(start.authorizationUrl, { sub: googleSub, name })
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state: start.state } })
  if (login.statusCode !== 200) throw new Error(`google login: ${login.statusCode} ${login.body}`)
  const { accessToken, user } = login.json()

  const link = async (payload: Record<string, unknown>) => {
    const linked = await app.inject({ method: 'POST', url: '/auth/identities', headers: bearer(accessToken), payload })
    if (linked.statusCode !== 201) throw new Error(`link ${String(payload.provider)}: ${linked.statusCode} ${linked.body}`)
  }
  // Naver through the code flow too: its refresh token is what the deletion revokes.
  const naverStart = (await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'naver', redirectUri: REDIRECT_URI } })).json()
  const naverCode = (await naver.authorize(naverStart.authorizationUrl, naverAccount)).searchParams.get('code')
  await link({ provider: 'naver', code: naverCode, redirectUri: REDIRECT_URI, state: naverStart.state })
  // Kakao natively: no token is kept, the admin key unlinks.
  await link({ provider: 'kakao', accessToken: (await kakao.sdkLogin({ id: kakaoId, nickname: name })).accessToken })
  // Apple natively with the authorization code, so the gateway holds Apple's refresh token.
  const rawNonce = randomBytes(16).toString('hex')
  const signIn = await apple.nativeSignIn(EMULATED_CREDENTIALS.apple.bundleId, { sub: appleSub, email: `${name}@privaterelay.appleid.com` }, { nonce: createHash('sha256').update(rawNonce).digest('hex') })
  await link({ provider: 'apple', idToken: signIn.identityToken, nonce: rawNonce, code: signIn.authorizationCode })
  return { userId: user.id as string, accessToken: accessToken as string, kakaoId, naverId: naverAccount.id, appleSub, googleSub }
}

/** What each provider has done for this person so far. */
function providerSide(person: Awaited<ReturnType<typeof personWithFourProviders>>) {
  return {
    kakao: kakao.unlinks().filter((unlink) => unlink.memberId === person.kakaoId),
    naver: naver.revocations().filter((revocation) => revocation.accountId === person.naverId),
    google: google.revocations().filter((revocation) => revocation.sub === person.googleSub),
    apple: apple.revocations().filter((revocation) => revocation.clientId === EMULATED_CREDENTIALS.apple.bundleId),
  }
}

const jobsOf = async (userId: string) => (await prisma.job.findMany({ where: { kind: 'provider.cleanup' } })).filter((job) => job.payload.includes(userId))


t.test('deleting an account unlinks it at Kakao and revokes it at Naver, Google and Apple, once each', async (t) => {
  const person = await personWithFourProviders('leaver')
  const appleBefore = apple.revocations().length
  t.equal((await app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(person.accessToken) })).statusCode, 204)
  await until('every cleanup job to be done', async () => (await jobsOf(person.userId)).length === 0)

  const side = providerSide(person)
  t.same(side.kakao, [{ memberId: person.kakaoId, by: 'admin_key' }], 'Kakao: one unlink, by the admin key')
  const unlinkCall = kakao.requests.find((request) => request.endpoint === 'unlink' && request.form?.target_id === person.kakaoId)
  t.match(unlinkCall, { method: 'POST', authorization: `KakaoAK ${kakao.adminKey}`, form: { target_id_type: 'user_id', target_id: person.kakaoId } })
  t.same(side.naver, [{ token: 'refresh_token', accountId: person.naverId, via: 'revoke' }], 'Naver: the refresh token revoked')
  t.equal(side.google.length, 1, 'Google: one revocation')
  t.equal(apple.revocations().length - appleBefore, 1, 'Apple: one revocation')
  t.match(apple.revocations().at(-1), { clientId: EMULATED_CREDENTIALS.apple.bundleId, tokenTypeHint: 'refresh_token' }, 'as the bundle ID the grant was issued to')

  const trail = await prisma.auditEvent.findMany({ where: { userId: person.userId, action: { startsWith: 'job.' } } })
  t.same(trail.map((row) => row.action).sort(), ['job.delivered', 'job.delivered', 'job.delivered', 'job.delivered'])
  t.same(trail.map((row) => row.detail!.split(' ')[0]).sort(), ['apple', 'google', 'kakao', 'naver'], 'one delivery per provider')
  t.ok(trail.every((row) => row.ip === null && row.userAgent === null), 'no address of the deleted user')

  // The grants kept at login went with their jobs: nothing of the provider tokens is left.
  t.equal(await prisma.job.count({ where: { payload: { contains: person.userId } } }), 0)
  await sleep(300)
  t.same(providerSide(person).kakao.length + providerSide(person).naver.length, 2, 'no second call came later')
})

t.test('a provider down during the deletion never touches the request; its job is retried until it answers', async (t) => {
  const person = await personWithFourProviders('patient')
  await kakao.down()
  google.failRevocation(2, 503)
  const started = Date.now()
  const deleted = await app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(person.accessToken) })
  t.equal(deleted.statusCode, 204, 'the user is deleted at once')
  t.ok(Date.now() - started < 3000, 'without waiting for the providers')
  t.equal(await prisma.user.count({ where: { publicId: person.userId } }), 0)

  const kakaoFailures = () => prisma.auditEvent.count({ where: { userId: person.userId, action: 'job.failed', detail: { startsWith: 'kakao' } } })
  await until('Kakao to be tried and fail', async () => (await kakaoFailures()) >= 2)
  await until('Google to succeed on its third try', () => providerSide(person).google.length === 1)
  // Google answered; the worker removes the job right after, not before the answer.
  await until("Google's job to be done", async () => (await jobsOf(person.userId)).length === 1)
  t.same(providerSide(person).kakao, [], 'nothing reached Kakao while it was down')
  t.equal((await jobsOf(person.userId)).length, 1, "only Kakao's job is still waiting")
  const [waiting] = await jobsOf(person.userId)
  t.match(waiting!.lastError, /kakao/, 'the job says what went wrong')

  await kakao.up()
  await until('Kakao to be unlinked once it is back', async () => (await jobsOf(person.userId)).length === 0, 30_000)
  t.same(providerSide(person).kakao, [{ memberId: person.kakaoId, by: 'admin_key' }], 'exactly one unlink, after the outage')
  const googleTrail = await prisma.auditEvent.findMany({ where: { userId: person.userId, detail: { startsWith: 'google' } }, orderBy: { id: 'asc' } })
  t.same(googleTrail.map((row) => row.action), ['job.failed', 'job.failed', 'job.delivered'], "Google's two refusals and its delivery, in the trail")
})

t.test('a user who unlinks a provider is unlinked there too: the grant kept for it is revoked', async (t) => {
  const person = await personWithFourProviders('tidy')
  const { identities } = (await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(person.accessToken) })).json() as { identities: { id: string; provider: string }[] }
  for (const provider of ['naver', 'kakao']) {
    const identity = identities.find((candidate) => candidate.provider === provider)!
    t.equal((await app.inject({ method: 'DELETE', url: `/auth/identities/${identity.id}`, headers: bearer(person.accessToken) })).statusCode, 204)
  }
  await until('both cleanups to be done', async () => (await jobsOf(person.userId)).length === 0)
  const side = providerSide(person)
  t.same(side.naver, [{ token: 'refresh_token', accountId: person.naverId, via: 'revoke' }], 'Naver: the refresh token revoked')
  t.same(side.kakao, [{ memberId: person.kakaoId, by: 'admin_key' }], 'Kakao: unlinked with the admin key')
  t.same(side.google, [], 'the identities still linked are left alone')
  t.equal(await prisma.user.count({ where: { publicId: person.userId } }), 1, 'the account stays')
})

t.test('without KAKAO_ADMIN_KEY the Kakao job cannot unlink, and its failure says what to set', async (t) => {
  const keyless = await startTestGateway({ listen: true, database: 'pglite', env: { JOB_RETRY_DELAY_MS: '50', KAKAO_ADMIN_KEY: '' } })
  t.teardown(() => keyless.close())
  const memberId = '9100000001'
  const login = await keyless.app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', accessToken: (await keyless.emulated!.kakao.sdkLogin({ id: memberId, nickname: 'nokey' })).accessToken } })
  t.equal(login.statusCode, 200, { body: login.body })
  const { accessToken, user } = login.json()
  t.equal((await keyless.app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(accessToken) })).statusCode, 204)
  await until('the failure to be recorded', async () => (await keyless.database.prisma.auditEvent.count({ where: { userId: user.id, action: 'job.failed' } })) > 0)
  const failure = await keyless.database.prisma.auditEvent.findFirstOrThrow({ where: { userId: user.id, action: 'job.failed' } })
  t.match(failure.detail, /KAKAO_ADMIN_KEY/, 'the operator learns what to set')
  t.same(keyless.emulated!.kakao.unlinks(), [])
})
