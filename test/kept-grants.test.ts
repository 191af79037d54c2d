// A returning login keeps the provider's newest grant (what deleting the account revokes at the
// provider), written while the session's row and signature are made. A login whose grant could
// not be kept gets no token and stores no session; the user's other sessions are untouched, even
// under SESSION_POLICY=single, where storing a session ends the others.

import { randomBytes } from 'node:crypto'
import * as jose from 'jose'
import t from 'tap'
import { parseRefreshToken } from '../src/sessions/refresh-token.js'
import { sessionKeys } from '../verifier/session-keys.js'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'

const ENCRYPTION_KEY = { kty: 'oct', kid: 'test-enc-1', k: randomBytes(32).toString('base64url') }
const gateway = await startTestGateway({ database: 'pglite', env: { ENCRYPTION_KEYS: JSON.stringify({ keys: [ENCRYPTION_KEY] }), SESSION_POLICY: 'single' } })
t.teardown(() => gateway.close())
const { prisma } = gateway.database

async function keptGrant(subject: string): Promise<string | undefined> {
  const identity = await prisma.identity.findUnique({ where: { provider_subject: { provider: 'google', subject } } })
  if (!identity?.sealedGrant) return undefined
  const { plaintext } = await jose.compactDecrypt(identity.sealedGrant, Buffer.from(ENCRYPTION_KEY.k, 'base64url'))
  const grant = JSON.parse(new TextDecoder().decode(plaintext)) as { refreshToken?: string; accessToken?: string }
  return grant.refreshToken ?? grant.accessToken
}

async function login(subject: string) {
  const response = await loginWithGoogle(gateway, { sub: subject, name: `User ${subject}` })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return response.json() as { refreshToken: string; user: { id: string } }
}

t.test("a returning login keeps the provider's newest grant", async (t) => {
  await login('returns')
  const first = await keptGrant('returns')
  t.ok(first, 'the first login kept a grant')
  await login('returns')
  const second = await keptGrant('returns')
  t.ok(second, 'the returning login kept one too')
  t.not(second, first, "it is the returning login's own grant, not the first one's")
})

t.test('a returning login whose grant cannot be kept gets no token and stores no session; the earlier one lives on', async (t) => {
  const { refreshToken, user } = await login('grant-refused')
  const sessionsBefore = await gateway.redis.zrange(sessionKeys.index(user.id), '0', '-1')
  const grantBefore = await keptGrant('grant-refused')
  // The database times out the grant's write (as a statement_timeout would), and only that write.
  await prisma.$executeRawUnsafe(
    `CREATE FUNCTION refuse_grant() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014'; END $$`,
  )
  await prisma.$executeRawUnsafe('CREATE TRIGGER refuse_grant BEFORE UPDATE OF sealed_grant ON identities FOR EACH ROW EXECUTE FUNCTION refuse_grant()')
  t.teardown(async () => {
    await prisma.$executeRawUnsafe('DROP TRIGGER IF EXISTS refuse_grant ON identities')
    await prisma.$executeRawUnsafe('DROP FUNCTION IF EXISTS refuse_grant()')
  })

  const refused = await loginWithGoogle(gateway, { sub: 'grant-refused', name: 'User grant-refused' })
  t.equal(refused.statusCode, 503, { body: refused.body })
  t.equal(refused.json().error, 'unavailable')
  t.notOk(refused.json().accessToken ?? refused.json().refreshToken, 'no token of any kind')
  t.same(await gateway.redis.zrange(sessionKeys.index(user.id), '0', '-1'), sessionsBefore, 'the sessions are those from before')
  t.equal(await keptGrant('grant-refused'), grantBefore, 'the grant kept before is still there')
  const started = await prisma.auditEvent.findMany({ where: { userId: user.id, action: 'session.started' }, orderBy: { id: 'desc' }, take: 1 })
  t.equal(started[0]?.outcome, 'failed', 'the audit trail says the session did not start')

  const earlier = await gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
  t.equal(earlier.statusCode, 200, "the user's earlier session was not ended (the single policy ends it only when a session is stored)")
  await prisma.$executeRawUnsafe('DROP TRIGGER refuse_grant ON identities')
  const again = await login('grant-refused')
  t.ok(parseRefreshToken(again.refreshToken), 'once the database takes the write again, the login succeeds')
})
