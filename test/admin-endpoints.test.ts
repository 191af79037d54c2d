// The admin endpoints, so operators need not stop the gateway: clients and their grants,
// roles and who holds them, finding a user. Each one takes only an admin client's token
// (anonymous 401, a user's token 403, and a refused call changes nothing), writes who did
// what from where to the audit trail, and answers bad input with a 4xx { error, message }:
// 400 for what the schema or the rules refuse, 404 for an unknown id, 409 for a duplicate.

import type { InjectOptions } from 'fastify'
import * as jose from 'jose'
import t, { type Test } from 'tap'
import { RoleDirectory } from '../src/admin/roles.js'
import { AuditLog } from '../src/audit/audit-log.js'
import { ClientDirectory, type NewClient } from '../src/clients/client-directory.js'
import { UserDirectory } from '../src/identity/users.js'
import { NO_ACCOUNT_EVENTS } from '../src/events/account-events.js'
import { loginWithGoogle, nativeAppAuthorization, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())
const { app } = gateway
const { prisma } = gateway.database
const GATEWAY = gateway.config.tokenAudience
const ORDERS = 'https://orders.example'
const UNKNOWN_ID = 'AAAAAAAAAAAAAAAAAAAAAA'

const clients = new ClientDirectory(prisma)
const roles = new RoleDirectory(prisma, new AuditLog(gateway.database, { warn: () => {} }))
const users = new UserDirectory(gateway.database, NO_ACCOUNT_EVENTS)

async function clientToken(client: Pick<NewClient, 'clientId' | 'clientSecret'>, form: Record<string, string> = {}) {
  return await app.inject({
    method: 'POST',
    url: '/oauth/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
    },
    payload: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString(),
  })
}

const ops = await clients.create('ops')
await clients.grant(ops.clientId, GATEWAY, ['admin'])
const adminToken = (await clientToken(ops)).json().access_token as string
const someone = (await loginWithGoogle(gateway, { sub: 'someone', name: 'Some One' })).json()
const userToken = someone.accessToken as string

const AS_ADMIN = { authorization: `Bearer ${adminToken}`, 'user-agent': 'ops-console/2' }
const admin = (request: InjectOptions) => app.inject({ ...request, headers: { ...AS_ADMIN, ...request.headers } })

/** Everything an admin endpoint can change, to show that a refused call changed nothing. */
async function state() {
  const [clientRows, clientGrants, roleRows, roleScopes, userRoles, sessions] = await Promise.all([
    prisma.oAuthClient.findMany({ select: { clientId: true }, orderBy: { id: 'asc' } }),
    prisma.clientGrant.count(),
    prisma.role.findMany({ select: { name: true }, orderBy: { id: 'asc' } }),
    prisma.roleScope.count(),
    prisma.userRole.count(),
    gateway.services.sessions.list(someone.user.id),
  ])
  return { clientRows, clientGrants, roleRows, roleScopes, userRoles, sessions: sessions.length }
}

async function lastAuditId(): Promise<bigint> {
  return (await prisma.auditEvent.findFirst({ orderBy: { id: 'desc' }, select: { id: true } }))?.id ?? 0n
}

interface EndpointCase {
  /** Makes what the call needs (a client to delete, a role to grant…); returns the valid request. */
  arrange(): Promise<InjectOptions>
  status: number
  /** The audit row the successful call must write. */
  audited: { action: string; target?: string | RegExp; userId?: string; detail?: string | RegExp }
  /** Each answered 400 invalid_request. */
  invalid: InjectOptions[]
  /** Each answered 404 not_found. */
  unknown?: InjectOptions[]
  /** Each answered 409 conflict. */
  duplicate?: InjectOptions[]
}

const json = (method: InjectOptions['method'], url: string, payload?: unknown): InjectOptions => ({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}) })

const newClient = async (name = 'fixture') => (await clients.create(name)).clientId
let roleCount = 0
const newRole = async () => {
  const name = `role-${++roleCount}`
  await roles.create(name)
  return name
}

const ENDPOINTS: Record<string, EndpointCase> = {
  'POST /admin/clients': {
    arrange: async () => json('POST', '/admin/clients', { name: 'billing service' }),
    status: 201,
    audited: { action: 'client.created', target: /^client:[A-Za-z0-9_-]{22}$/, detail: 'billing service' },
    invalid: [
      json('POST', '/admin/clients', {}),
      json('POST', '/admin/clients', { name: '' }),
      json('POST', '/admin/clients', { name: '   ' }),
      json('POST', '/admin/clients', { name: 'x'.repeat(101) }),
      // A lone surrogate is not text (the embedded database refused its bytes with a 500).
      json('POST', '/admin/clients', { name: '¡\udc00' }),
      json('POST', '/admin/clients', { name: 'ok', secret: 'chosen' }),
      json('POST', '/admin/clients'),
    ],
  },
  'GET /admin/clients': {
    arrange: async () => json('GET', '/admin/clients'),
    status: 200,
    audited: { action: 'clients.listed' },
    invalid: [json('GET', '/admin/clients?all=1')],
  },
  'DELETE /admin/clients/{clientId}': {
    arrange: async () => json('DELETE', `/admin/clients/${await newClient()}`),
    status: 204,
    audited: { action: 'client.deleted', target: /^client:/ },
    invalid: [json('DELETE', '/admin/clients/not%20an%20id')],
    unknown: [json('DELETE', `/admin/clients/${UNKNOWN_ID}`)],
  },
  'POST /admin/clients/{clientId}/grants': {
    arrange: async () => json('POST', `/admin/clients/${await newClient()}/grants`, { resource: ORDERS, scopes: ['read:order', 'write:order'] }),
    status: 204,
    audited: { action: 'client.granted', target: /^client:/, detail: `${ORDERS}: read:order write:order` },
    invalid: [
      json('POST', `/admin/clients/${ops.clientId}/grants`, { resource: 'not a uri', scopes: ['read:order'] }),
      json('POST', `/admin/clients/${ops.clientId}/grants`, { resource: `${ORDERS}#fragment`, scopes: ['read:order'] }),
      json('POST', `/admin/clients/${ops.clientId}/grants`, { resource: ORDERS, scopes: [] }),
      json('POST', `/admin/clients/${ops.clientId}/grants`, { resource: ORDERS, scopes: ['two words'] }),
      json('POST', `/admin/clients/${ops.clientId}/grants`, { resource: ORDERS, scopes: 'read:order' }),
      json('POST', `/admin/clients/${ops.clientId}/grants`, { resource: ORDERS }),
    ],
    unknown: [json('POST', `/admin/clients/${UNKNOWN_ID}/grants`, { resource: ORDERS, scopes: ['read:order'] })],
  },
  'DELETE /admin/clients/{clientId}/grants': {
    arrange: async () => {
      const clientId = await newClient()
      await clients.grant(clientId, ORDERS, ['read:order', 'write:order'])
      return json('DELETE', `/admin/clients/${clientId}/grants?resource=${encodeURIComponent(ORDERS)}&scope=write:order`)
    },
    status: 200,
    audited: { action: 'client.revoked', target: /^client:/, detail: `${ORDERS}: write:order` },
    invalid: [
      json('DELETE', `/admin/clients/${ops.clientId}/grants`),
      // An empty scope list must not read as "every scope".
      json('DELETE', `/admin/clients/${ops.clientId}/grants?resource=${encodeURIComponent(GATEWAY)}&scope=`),
      json('DELETE', `/admin/clients/${ops.clientId}/grants?resource=${encodeURIComponent(GATEWAY)}&scope=a%20%20b`),
    ],
    unknown: [json('DELETE', `/admin/clients/${UNKNOWN_ID}/grants?resource=${encodeURIComponent(ORDERS)}`)],
  },
  'POST /admin/roles': {
    arrange: async () => json('POST', '/admin/roles', { name: 'support' }),
    status: 201,
    audited: { action: 'role.created', target: 'role:support' },
    invalid: [
      json('POST', '/admin/roles', {}),
      json('POST', '/admin/roles', { name: '..' }),
      json('POST', '/admin/roles', { name: 'two words' }),
      json('POST', '/admin/roles', { name: 'r'.repeat(65) }),
    ],
    duplicate: [json('POST', '/admin/roles', { name: 'support' })],
  },
  'GET /admin/roles': {
    arrange: async () => json('GET', '/admin/roles'),
    status: 200,
    audited: { action: 'roles.listed' },
    invalid: [json('GET', '/admin/roles?users=1')],
  },
  'DELETE /admin/roles/{role}': {
    arrange: async () => json('DELETE', `/admin/roles/${await newRole()}`),
    status: 204,
    audited: { action: 'role.deleted', target: /^role:role-/ },
    invalid: [json('DELETE', '/admin/roles/two%20words')],
    unknown: [json('DELETE', '/admin/roles/no-such-role')],
  },
  'POST /admin/roles/{role}/grants': {
    arrange: async () => json('POST', `/admin/roles/${await newRole()}/grants`, { resource: ORDERS, scopes: ['read:order'] }),
    status: 204,
    audited: { action: 'role.granted', target: /^role:role-/, detail: `${ORDERS}: read:order` },
    invalid: [
      json('POST', '/admin/roles/support/grants', { resource: 'orders', scopes: ['read:order'] }),
      json('POST', '/admin/roles/support/grants', { resource: ORDERS, scopes: ['"quoted"'] }),
      json('POST', '/admin/roles/support/grants', { resource: ORDERS, scopes: ['read:order'], users: [] }),
    ],
    unknown: [json('POST', '/admin/roles/no-such-role/grants', { resource: ORDERS, scopes: ['read:order'] })],
  },
  'DELETE /admin/roles/{role}/grants': {
    arrange: async () => {
      const name = await newRole()
      await roles.grant(name, ORDERS, ['read:order'])
      return json('DELETE', `/admin/roles/${name}/grants?resource=${encodeURIComponent(ORDERS)}`)
    },
    status: 200,
    audited: { action: 'role.revoked', target: /^role:role-/, detail: `${ORDERS}: (every scope)` },
    invalid: [json('DELETE', '/admin/roles/support/grants?scope=read:order')],
    unknown: [json('DELETE', `/admin/roles/no-such-role/grants?resource=${encodeURIComponent(ORDERS)}`)],
  },
  'GET /admin/users/{userId}/roles': {
    arrange: async () => json('GET', `/admin/users/${someone.user.id}/roles`),
    status: 200,
    audited: { action: 'user.viewed', userId: someone.user.id, detail: 'roles' },
    invalid: [json('GET', '/admin/users/not%20an%20id/roles'), json('GET', `/admin/users/${someone.user.id}/roles?all=1`)],
    unknown: [json('GET', `/admin/users/${UNKNOWN_ID}/roles`)],
  },
  'POST /admin/users/{userId}/roles': {
    arrange: async () => json('POST', `/admin/users/${someone.user.id}/roles`, { role: await newRole() }),
    status: 200,
    audited: { action: 'role.assigned', userId: someone.user.id, target: /^role:role-/ },
    invalid: [json('POST', `/admin/users/${someone.user.id}/roles`, {}), json('POST', `/admin/users/${someone.user.id}/roles`, { role: 'a b' })],
    unknown: [json('POST', `/admin/users/${UNKNOWN_ID}/roles`, { role: 'support' }), json('POST', `/admin/users/${someone.user.id}/roles`, { role: 'no-such-role' })],
  },
  'DELETE /admin/users/{userId}/roles/{role}': {
    arrange: async () => {
      const name = await newRole()
      await roles.assign(someone.user.id, name, 'test')
      return json('DELETE', `/admin/users/${someone.user.id}/roles/${name}`)
    },
    status: 204,
    audited: { action: 'role.unassigned', userId: someone.user.id, target: /^role:role-/ },
    invalid: [json('DELETE', `/admin/users/${someone.user.id}/roles/a%20b`)],
    unknown: [json('DELETE', `/admin/users/${UNKNOWN_ID}/roles/support`), json('DELETE', `/admin/users/${someone.user.id}/roles/no-such-role`)],
  },
  'GET /admin/users': {
    arrange: async () => json('GET', '/admin/users?provider=google&subject=someone'),
    status: 200,
    audited: { action: 'user.viewed', userId: someone.user.id, detail: 'record, found by google identity' },
    invalid: [
      json('GET', '/admin/users'),
      json('GET', '/admin/users?provider=google'),
      json('GET', '/admin/users?email=a@example.com&provider=google&subject=someone'),
      json('GET', '/admin/users?email='),
      json('GET', '/admin/users?name=Some'),
    ],
  },
  'GET /admin/users/{userId}': {
    arrange: async () => json('GET', `/admin/users/${someone.user.id}`),
    status: 200,
    audited: { action: 'user.viewed', userId: someone.user.id, detail: 'record' },
    invalid: [json('GET', '/admin/users/not%20an%20id'), json('GET', `/admin/users/${someone.user.id}?identities=0`)],
    unknown: [json('GET', `/admin/users/${UNKNOWN_ID}`)],
  },
  'GET /admin/users/{userId}/audit': {
    arrange: async () => json('GET', `/admin/users/${someone.user.id}/audit?limit=5`),
    status: 200,
    audited: { action: 'user.viewed', userId: someone.user.id, detail: 'audit trail' },
    invalid: [json('GET', `/admin/users/${someone.user.id}/audit?limit=0`), json('GET', `/admin/users/${someone.user.id}/audit?limit=501`)],
    unknown: [json('GET', `/admin/users/${UNKNOWN_ID}/audit`)],
  },
  // Last: it ends the sessions of the user whose token the other cases show.
  'POST /admin/users/{userId}/logout': {
    arrange: async () => json('POST', `/admin/users/${someone.user.id}/logout`),
    status: 204,
    audited: { action: 'sessions.ended_all', userId: someone.user.id },
    invalid: [json('POST', '/admin/users/not%20an%20id/logout')],
    unknown: [json('POST', `/admin/users/${UNKNOWN_ID}/logout`)],
  },
}

const contractError = (t: Test, response: Awaited<ReturnType<typeof app.inject>>, status: number, error: string, what: string) => {
  t.equal(response.statusCode, status, `${what}: ${status} (${response.body})`)
  t.match(response.json(), { error, message: String }, `${what}: { error: "${error}", message }`)
}

for (const [name, endpoint] of Object.entries(ENDPOINTS)) {
  t.test(name, async (t) => {
    const request = await endpoint.arrange()
    const before = await state()

    const anonymous = await app.inject(request)
    contractError(t, anonymous, 401, 'invalid_token', 'anonymous')
    const asUser = await app.inject({ ...request, headers: { authorization: `Bearer ${userToken}` } })
    contractError(t, asUser, 403, 'insufficient_scope', "a user's own token")
    for (const bad of endpoint.invalid) contractError(t, await admin(bad), 400, 'invalid_request', `${bad.method} ${bad.url} ${JSON.stringify(bad.payload ?? '')}`)
    for (const missing of endpoint.unknown ?? []) contractError(t, await admin(missing), 404, 'not_found', `${missing.method} ${missing.url}`)
    t.same(await state(), before, 'the refused calls changed nothing')

    const since = await lastAuditId()
    const response = await admin(request)
    t.equal(response.statusCode, endpoint.status, `an admin client: ${endpoint.status} ${response.body}`)
    t.equal(response.headers['cache-control'], 'no-store')
    const events = await prisma.auditEvent.findMany({ where: { id: { gt: since }, actor: `client:${ops.clientId}` } })
    t.equal(events.length, 1, 'one audit event')
    t.match(events[0], { ...endpoint.audited, outcome: 'success', ip: '127.0.0.1', userAgent: 'ops-console/2' }, 'audited: what, by which client, from where')

    for (const duplicate of endpoint.duplicate ?? []) contractError(t, await admin(duplicate), 409, 'conflict', 'a duplicate')
  })
}

t.test('a client made over HTTP gets tokens for what it was granted over HTTP, until it is deleted', async (t) => {
  const created = await admin(json('POST', '/admin/clients', { name: 'payments' }))
  t.equal(created.statusCode, 201)
  const client = created.json() as NewClient
  t.match(client, { clientId: /^[A-Za-z0-9_-]{22}$/, clientSecret: /^[A-Za-z0-9_-]{43}$/, name: 'payments' })
  t.equal((await clientToken(client, { resource: ORDERS })).json().error, 'invalid_target', 'no grant yet')

  t.equal((await admin(json('POST', `/admin/clients/${client.clientId}/grants`, { resource: ORDERS, scopes: ['read:order'] }))).statusCode, 204)
  const issued = await clientToken(client, { resource: ORDERS })
  t.equal(issued.statusCode, 200)
  t.equal(issued.json().scope, 'read:order')
  t.match(jose.decodeJwt(issued.json().access_token), { aud: ORDERS, scope: 'read:order', client_id: client.clientId })

  const list = await admin(json('GET', '/admin/clients'))
  t.match(list.json().clients, [{ clientId: ops.clientId, name: 'ops', grants: [{ resource: GATEWAY, scopes: ['admin'] }] }])
  t.match(
    list.json().clients.find((listed: { clientId: string }) => listed.clientId === client.clientId),
    { name: 'payments', createdAt: /^\d{4}-\d\d-\d\dT/, grants: [{ resource: ORDERS, scopes: ['read:order'] }] },
  )
  t.notOk(list.body.includes(client.clientSecret), 'the secret is never shown again')
  const stored = await prisma.auditEvent.findMany({ where: { target: `client:${client.clientId}` } })
  t.notOk(JSON.stringify(stored, (_key, value) => (typeof value === 'bigint' ? String(value) : value)).includes(client.clientSecret), 'nor kept in the audit trail')

  t.equal((await admin(json('DELETE', `/admin/clients/${client.clientId}`))).statusCode, 204)
  t.equal((await clientToken(client, { resource: ORDERS })).statusCode, 401, 'a deleted client gets no token')
  contractError(t, await admin(json('DELETE', `/admin/clients/${client.clientId}`)), 404, 'not_found', 'deleting it again')
})

t.test("a role given over HTTP is in the user's next access token for its resource", async (t) => {
  const SUPPORT = 'https://support.example'
  const user = (await loginWithGoogle(gateway, { sub: 'agent', name: 'Agent' })).json()
  t.equal((await admin(json('POST', '/admin/roles', { name: 'agent' }))).statusCode, 201)
  t.equal((await admin(json('POST', '/admin/roles/agent/grants', { resource: SUPPORT, scopes: ['ticket:read', 'ticket:write'] }))).statusCode, 204)
  const assigned = await admin(json('POST', `/admin/users/${user.user.id}/roles`, { role: 'agent' }))
  t.same(assigned.json(), { roles: ['agent'] })
  t.same((await admin(json('POST', `/admin/users/${user.user.id}/roles`, { role: 'agent' }))).json(), { roles: ['agent'] }, 'assigning twice changes nothing')

  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { ...(await nativeAppAuthorization(gateway, { sub: 'agent', name: 'Agent' })), resource: SUPPORT } })
  t.equal(login.statusCode, 200, login.body)
  t.match(jose.decodeJwt(login.json().accessToken), { sub: user.user.id, aud: SUPPORT, scope: 'ticket:read ticket:write' })

  const roleList = await admin(json('GET', '/admin/roles'))
  t.match(roleList.json().roles.find((role: { name: string }) => role.name === 'agent'), { users: 1, grants: [{ resource: SUPPORT, scopes: ['ticket:read', 'ticket:write'] }] })
  t.match((await admin(json('GET', `/admin/users/${user.user.id}`))).json(), { id: user.user.id, nickname: 'Agent', roles: ['agent'], identities: [{ provider: 'google', subject: 'agent' }] })

  const revoked = await admin(json('DELETE', `/admin/roles/agent/grants?resource=${encodeURIComponent(SUPPORT)}&scope=ticket:write`))
  t.same(revoked.json(), { revoked: 1 })
  t.equal((await admin(json('DELETE', `/admin/users/${user.user.id}/roles/agent`))).statusCode, 204)
  t.same((await admin(json('GET', `/admin/users/${user.user.id}/roles`))).json(), { roles: [] })
})

t.test('finding users: by provider identity, or by email exactly and ignoring case; nobody is an empty list', async (t) => {
  const ann = await users.createWithIdentity({ nickname: 'Ann', email: 'Ann_Lee@Example.com' }, { provider: 'kakao', subject: '1376016924429759228' })
  const twin = await users.createWithIdentity({ nickname: 'Ann again', email: 'ann_lee@example.com' }, { provider: 'naver', subject: 'n-1' })
  await users.createWithIdentity({ nickname: 'Other', email: 'annxlee@example.com' }, { provider: 'google', subject: 'g-1' })

  const byEmail = await admin(json('GET', `/admin/users?email=${encodeURIComponent('ANN_LEE@example.COM')}`))
  t.equal(byEmail.statusCode, 200)
  t.same(byEmail.json().users.map((user: { id: string }) => user.id), [ann.id, twin.id], 'both who share the address; "_" is no wildcard')
  const byIdentity = await admin(json('GET', '/admin/users?provider=kakao&subject=1376016924429759228'))
  t.match(byIdentity.json().users, [{ id: ann.id, email: 'Ann_Lee@Example.com', identities: [{ provider: 'kakao', subject: '1376016924429759228', linkedAt: String }] }])
  t.same((await admin(json('GET', '/admin/users?email=ann%25'))).json(), { users: [] })
  t.same((await admin(json('GET', '/admin/users?provider=kakao&subject=1376016924429759229'))).json(), { users: [] })

  const viewed = await prisma.auditEvent.findMany({ where: { action: 'user.viewed', userId: { in: [ann.id, twin.id] } }, orderBy: { id: 'asc' } })
  t.match(viewed, [{ userId: ann.id, detail: 'record, found by email' }, { userId: twin.id, detail: 'record, found by email' }, { userId: ann.id, detail: 'record, found by kakao identity' }])
  const empty = await prisma.auditEvent.findMany({ where: { action: 'users.searched' }, orderBy: { id: 'asc' } })
  t.match(empty, [{ detail: 'by email: no match' }, { detail: 'by kakao identity: no match' }], 'a search that found nobody is audited too')
  t.notOk(JSON.stringify([...viewed, ...empty], (_key, value) => (typeof value === 'bigint' ? String(value) : value)).toLowerCase().includes('ann_lee@'), 'the searched address is not copied into the trail')
})

t.test('the OpenAPI document has every admin operation, its security and its answers', async (t) => {
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  for (const [operation, endpoint] of Object.entries(ENDPOINTS)) {
    const [method, route] = operation.split(' ') as [string, string]
    const described = document.paths[route]?.[method.toLowerCase()]
    t.ok(described, `${operation} is documented`)
    if (!described) continue
    t.same(described.security, [{ bearer: [] }], `${operation}: an admin client's bearer token`)
    const statuses = Object.keys(described.responses)
    for (const status of [String(endpoint.status), '400', '401', '403', '429', '503']) t.ok(statuses.includes(status), `${operation} answers ${status}`)
    if (endpoint.unknown) t.ok(statuses.includes('404'), `${operation} answers 404`)
    if (endpoint.duplicate) t.ok(statuses.includes('409'), `${operation} answers 409`)
    t.match(described.responses['401'].content['application/json'].schema, { required: ['error', 'message'] })
  }
  const create = document.paths['/admin/clients'].post.requestBody.content['application/json'].schema
  t.match(create, { required: ['name'], additionalProperties: false })
})
