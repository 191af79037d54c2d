// Operators: a client made with the CLI and granted the admin scope throws a user out, and
// every session of that user ends at once. Nobody else gets in (not a user, not a client
// without the scope, not a client token for another resource). Every refused attempt by a
// known party is in the audit trail; anonymous ones are only counted and logged.

import { execFile } from 'node:child_process'
import * as jose from 'jose'
import t from 'tap'
import { ClientDirectory, type NewClient } from '../src/clients/client-directory.js'
import { loginWithGoogle, startTestGateway, type TestGateway } from './support/gateway.js'
import { createTestDatabase } from './support/postgres.js'

// The CLI tests run a Node process per command, several seconds each on a busy machine.
t.setTimeout(300_000)
const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const clients = new ClientDirectory(gateway.database.prisma)
const GATEWAY = gateway.config.tokenAudience

const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })
const refresh = (target: TestGateway, refreshToken: string) => target.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
const me = (target: TestGateway, accessToken: string) => target.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })
const forceLogout = (target: TestGateway, userId: string, headers: Record<string, string> = {}) =>
  target.app.inject({ method: 'POST', url: `/admin/users/${userId}/logout`, headers: { 'user-agent': 'ops-console/1', ...headers } })

async function clientToken(target: TestGateway, client: Pick<NewClient, 'clientId' | 'clientSecret'>, resource?: string): Promise<string> {
  const response = await target.app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
    },
    payload: new URLSearchParams({ grant_type: 'client_credentials', ...(resource ? { resource } : {}) }).toString(),
  })
  if (response.statusCode !== 200) throw new Error(`no client token: ${response.statusCode} ${response.body}`)
  return response.json().access_token
}

async function deniedEvents(userId: string) {
  return gateway.database.prisma.auditEvent.findMany({ where: { userId, action: 'admin.denied' }, orderBy: { id: 'asc' } })
}

/** A genuine admin token of the client, signed with the gateway's key, that expired an hour ago: it cannot be verified any more. */
function expiredClientToken(clientId: string): Promise<string> {
  const { current } = gateway.services.keys
  const now = Math.floor(Date.now() / 1000)
  return new jose.SignJWT({ client_id: clientId, scope: 'admin' })
    .setProtectedHeader({ alg: current.alg, kid: current.kid, typ: 'at+jwt' })
    .setIssuer(gateway.config.publicUrl)
    .setSubject(clientId)
    .setAudience(GATEWAY)
    .setIssuedAt(now - 4200)
    .setExpirationTime(now - 3600)
    .setJti('expired')
    .sign(current.privateKey)
}

const ops = await clients.create('ops')
await clients.grant(ops.clientId, GATEWAY, ['admin'])
const adminToken = await clientToken(gateway, ops)

t.test('an admin client throws a user out: every session ends at once', async (t) => {
  const account = { sub: 'thrown-out', name: 'Out' }
  const phone = (await loginWithGoogle(gateway, account, { 'user-agent': 'Phone/1.0' })).json()
  const laptop = (await loginWithGoogle(gateway, account, { 'user-agent': 'Laptop/2.0' })).json()
  const bystander = (await loginWithGoogle(gateway, { sub: 'bystander', name: 'By' })).json()
  t.equal((await me(gateway, phone.accessToken)).statusCode, 200)

  const response = await forceLogout(gateway, phone.user.id, bearer(adminToken))
  t.equal(response.statusCode, 204)
  t.equal(response.body, '')
  for (const session of [phone, laptop]) {
    t.equal((await me(gateway, session.accessToken)).statusCode, 401, 'the access token is refused at once')
    t.equal((await refresh(gateway, session.refreshToken)).statusCode, 401, 'the refresh token fails')
  }
  t.equal((await me(gateway, bystander.accessToken)).statusCode, 200, 'nobody else is touched')
  t.equal((await loginWithGoogle(gateway, account)).statusCode, 200, 'the user can log in again')

  const [event] = await gateway.database.prisma.auditEvent.findMany({ where: { userId: phone.user.id, action: 'sessions.ended_all' } })
  t.match(event, { actor: `client:${ops.clientId}`, outcome: 'success', ip: '127.0.0.1', userAgent: 'ops-console/1' }, 'audited: which client, from where')

  const trail = await app.inject({ method: 'GET', url: `/admin/users/${phone.user.id}/audit?limit=10`, headers: bearer(adminToken) })
  t.equal(trail.statusCode, 200)
  t.equal(trail.headers['cache-control'], 'no-store')
  const events = trail.json().events as { action: string; actor: string; at: string }[]
  t.equal(events[0]!.action, 'session.started', 'newest first: the login after the forced logout')
  t.match(events[1], { action: 'sessions.ended_all', actor: `client:${ops.clientId}`, outcome: 'success' })
  for (const secret of [phone.accessToken, phone.refreshToken, laptop.refreshToken, adminToken]) t.notOk(trail.body.includes(secret), 'no token value')
  t.equal((await app.inject({ method: 'GET', url: `/admin/users/${phone.user.id}/audit?limit=0`, headers: bearer(adminToken) })).statusCode, 400)
})

t.test('an unknown user → 404 not_found', async (t) => {
  const response = await forceLogout(gateway, 'AAAAAAAAAAAAAAAAAAAAAA', bearer(adminToken))
  t.equal(response.statusCode, 404)
  t.equal(response.json().error, 'not_found')
  t.equal((await app.inject({ method: 'GET', url: '/admin/users/AAAAAAAAAAAAAAAAAAAAAA/audit', headers: bearer(adminToken) })).statusCode, 404)
  t.equal((await forceLogout(gateway, 'not%20an%20id', bearer(adminToken))).statusCode, 400, 'a malformed id is a bad request')
})

t.test('callers without the admin credential are refused, and every attempt of a known party is audited', async (t) => {
  const victim = (await loginWithGoogle(gateway, { sub: 'victim', name: 'Vic' })).json()
  const userId = victim.user.id as string

  const rowsBefore = await gateway.database.prisma.auditEvent.count()
  await t.test('no token → 401 with a bare Bearer challenge', async (t) => {
    const response = await forceLogout(gateway, userId)
    t.equal(response.statusCode, 401)
    t.equal(response.json().error, 'invalid_token')
    t.equal(response.headers['www-authenticate'], 'Bearer')
  })

  await t.test("the user's own access token → 403: a valid token, but users are never admins here", async (t) => {
    const response = await forceLogout(gateway, userId, bearer(victim.accessToken))
    t.equal(response.statusCode, 403)
    t.equal(response.json().error, 'insufficient_scope')
    t.equal(response.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="admin"')
  })

  const reader = await clients.create('reader')
  await clients.grant(reader.clientId, GATEWAY, ['audit:read'])
  await t.test('a client token without the admin scope → 403', async (t) => {
    const response = await forceLogout(gateway, userId, bearer(await clientToken(gateway, reader)))
    t.equal(response.statusCode, 403)
    t.equal(response.json().error, 'insufficient_scope')
  })

  const elsewhere = await clients.create('admin elsewhere')
  await clients.grant(elsewhere.clientId, 'https://orders.example', ['admin'])
  await t.test('an admin token for another resource → 401: not a token for the gateway', async (t) => {
    const response = await forceLogout(gateway, userId, bearer(await clientToken(gateway, elsewhere, 'https://orders.example')))
    t.equal(response.statusCode, 401)
    t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"')
  })

  await t.test('a forged or malformed token → 401', async (t) => {
    const [header, payload] = adminToken.split('.')
    t.equal((await forceLogout(gateway, userId, bearer(`${header}.${payload}.AAAA`))).statusCode, 401)
    t.equal((await forceLogout(gateway, userId, { authorization: 'Basic abc' })).statusCode, 401)
  })

  t.equal((await me(gateway, victim.accessToken)).statusCode, 200, 'none of it ended the victim’s session')
  const denied = await deniedEvents(userId)
  t.same(
    denied.map((event) => [event.actor, event.outcome]),
    [
      [`user:${userId}`, 'denied'],
      [`client:${reader.clientId}`, 'denied'],
      [`client:${elsewhere.clientId}`, 'denied'],
    ],
    'a row for each known party (the wrong-audience token names its client); none for the anonymous ones',
  )
  t.equal(await gateway.database.prisma.auditEvent.count(), rowsBefore + 3, 'and no other row anywhere')
  t.ok(denied.every((event) => event.ip === '127.0.0.1' && event.userAgent === 'ops-console/1'), 'from where')
  const stored = JSON.stringify(denied, (_key, value) => (typeof value === 'bigint' ? String(value) : value))
  t.notOk(stored.includes(victim.accessToken) || stored.includes(adminToken.split('.')[1]!), 'no token value in the trail')
})

t.test('anonymous refusals are counted and logged, never a row each', async (t) => {
  const victim = (await loginWithGoogle(gateway, { sub: 'flooded', name: 'Flo' })).json()
  const userId = victim.user.id as string
  const warnings = t.capture(gateway.app.log, 'warn')
  // From an address of its own, so no earlier refusal has opened its window already.
  const remoteAddress = '192.0.2.7'
  const [header, payload] = adminToken.split('.')
  const expired = await expiredClientToken(ops.clientId)
  const anonymous: Record<string, string>[] = [
    {},
    { authorization: 'Basic abc' },
    bearer('garbage'),
    bearer(`${header}.${payload}.AAAA`),
    bearer(expired),
  ]
  const rowsBefore = await gateway.database.prisma.auditEvent.count()
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      app.inject({
        method: i % 2 === 0 ? 'POST' : 'GET',
        url: `/admin/users/${userId}/${i % 2 === 0 ? 'logout' : 'audit'}`,
        headers: anonymous[i % anonymous.length],
        remoteAddress,
      }),
    ),
  )
  t.equal(await gateway.database.prisma.auditEvent.count(), rowsBefore, '200 refusals without a valid credential: not one row')
  t.ok(answers.every((answer) => answer.statusCode === 401), 'all 401')
  t.ok(
    answers.every((answer) => answer.json().error === 'invalid_token' && typeof answer.json().message === 'string'),
    'all in the contract shape {error, message}',
  )
  const counted = warnings().filter(({ args: [object] }) => (object as { audit?: { ip?: string } }).audit?.ip === remoteAddress)
  t.equal(counted.length, 1, 'one warning for the address (the rest are summed when its minute ends), not 200')
  t.match(counted[0]?.args[0], { audit: { action: 'admin.denied', outcome: 'denied', actor: 'anonymous', ip: remoteAddress, count: 1 } })

  const reader = await clients.create('flood reader')
  await clients.grant(reader.clientId, GATEWAY, ['audit:read'])
  t.equal((await forceLogout(gateway, userId, bearer(await clientToken(gateway, reader)))).statusCode, 403)
  t.equal(await gateway.database.prisma.auditEvent.count(), rowsBefore + 1, 'a genuine token without the admin scope still gets its row')
  t.match(await deniedEvents(userId), [{ actor: `client:${reader.clientId}`, outcome: 'denied', ip: '127.0.0.1' }])
  t.equal((await me(gateway, victim.accessToken)).statusCode, 200)
})

t.test('revoking the admin grant or deleting the client takes effect at once, not at token expiry', async (t) => {
  const target = (await loginWithGoogle(gateway, { sub: 'target', name: 'Tar' })).json()
  const temp = await clients.create('temporary admin')
  await clients.grant(temp.clientId, GATEWAY, ['admin'])
  const token = await clientToken(gateway, temp)
  t.equal((await app.inject({ method: 'GET', url: `/admin/users/${target.user.id}/audit`, headers: bearer(token) })).statusCode, 200)

  await clients.revoke(temp.clientId, GATEWAY, ['admin'])
  const revoked = await forceLogout(gateway, target.user.id, bearer(token))
  t.equal(revoked.statusCode, 403, 'the token still says admin, the database no longer does')
  await clients.delete(temp.clientId)
  t.equal((await forceLogout(gateway, target.user.id, bearer(token))).statusCode, 401, 'a deleted client has no valid tokens')
  t.equal((await me(gateway, target.accessToken)).statusCode, 200)
  t.same((await deniedEvents(target.user.id)).map((event) => event.actor), [`client:${temp.clientId}`, `client:${temp.clientId}`])
})

/** Runs the operator CLI as an operator would, against the given database. */
function cli(databaseUrl: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/admin.ts', ...args],
      { env: { ...process.env, DATABASE_URL: databaseUrl, NODE_ENV: 'test' }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    )
  })
}

t.test('the CLI end to end: create a client, grant it admin, throw a user out with it', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())

  const created = await cli(database.url, 'client:create', 'ops')
  t.equal(created.code, 0, created.stderr)
  const clientId = /^client_id: (\S+)$/m.exec(created.stdout)?.[1]
  const clientSecret = /^client_secret: (\S+)$/m.exec(created.stdout)?.[1]
  t.ok(clientId && clientSecret, 'prints the id and the secret')
  t.match(created.stdout, /shown only this once/)

  const ownGateway = await startTestGateway({ databaseUrl: database.url })
  t.teardown(() => ownGateway.close())
  const audience = ownGateway.config.tokenAudience
  const granted = await cli(database.url, 'client:grant', clientId!, audience, 'admin')
  t.equal(granted.code, 0, granted.stderr)
  const listed = await cli(database.url, 'client:list')
  t.match(listed.stdout, new RegExp(`${clientId}  ops`))
  t.match(listed.stdout, `${audience}: admin`)
  t.notOk(listed.stdout.includes(clientSecret!), 'the list never shows the secret')

  const user = (await loginWithGoogle(ownGateway, { sub: 'cli-target', name: 'Cli' })).json()
  const token = await clientToken(ownGateway, { clientId: clientId!, clientSecret: clientSecret! })
  t.equal((await forceLogout(ownGateway, user.user.id, bearer(token))).statusCode, 204)
  t.equal((await me(ownGateway, user.accessToken)).statusCode, 401)
  t.equal((await refresh(ownGateway, user.refreshToken)).statusCode, 401)

  const trail = await cli(database.url, 'audit', user.user.id)
  t.equal(trail.code, 0, trail.stderr)
  t.match(trail.stdout, new RegExp(`sessions\\.ended_all  success  by client:${clientId}`))
  t.notOk(trail.stdout.includes(user.refreshToken))

  await t.test('roles', async (t) => {
    t.equal((await cli(database.url, 'role:create', 'order-reader')).code, 0)
    t.equal((await cli(database.url, 'role:grant', 'order-reader', 'https://orders.example', 'read:order')).code, 0)
    const assigned = await cli(database.url, 'role:assign', user.user.id, 'order-reader')
    t.equal(assigned.code, 0, assigned.stderr)
    t.match((await cli(database.url, 'role:list')).stdout, /order-reader {2}\(1 user\)\n {4}https:\/\/orders\.example: read:order/)
    t.equal((await cli(database.url, 'role:unassign', user.user.id, 'order-reader')).code, 0)
    const events = await ownGateway.database.prisma.auditEvent.findMany({ where: { userId: user.user.id, action: { startsWith: 'role.' } }, orderBy: { id: 'asc' } })
    t.match(events, [{ action: 'role.assigned', actor: /^operator/ }, { action: 'role.unassigned', actor: /^operator/ }], 'both in the audit trail, by the operator')
  })

  await t.test('failures say what is wrong and exit 1', async (t) => {
    const cases: [string[], RegExp][] = [
      [[], /usage: npm run admin/],
      [['client:grant', 'no-such-client', audience, 'admin'], /no client "no-such-client"/],
      [['client:grant', clientId!, 'not a uri', 'admin'], /not a resource indicator/],
      [['client:grant', clientId!, audience], /wrong number of arguments/],
      [['role:create', 'order-reader'], /exists already/],
      [['role:assign', 'nobody', 'order-reader'], /no user "nobody"/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ]
    const [badDatabase, ...results] = await Promise.all([cli('mysql://nope', 'client:list'), ...cases.map(([args]) => cli(database.url, ...args))])
    results.forEach((result, i) => {
      const [args, message] = cases[i]!
      t.equal(result.code, 1, `${args.join(' ') || '(nothing)'}: exit 1`)
      t.match(result.stderr, message)
    })
    t.equal(badDatabase.code, 1)
    t.match(badDatabase.stderr, /configuration: DATABASE_URL/)
  })
})
