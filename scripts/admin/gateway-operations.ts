// The CLI through a running gateway: the admin endpoints, with an access token of an admin
// client got from POST /oauth/token (client_credentials, HTTP Basic; RFC 6749 §4.4). The
// gateway keeps the database, its lock and its caches; nothing here opens the database.

import type { AuditRecord } from '../../src/admin/audit-trail.js'
import type { RoleSummary } from '../../src/admin/roles.js'
import type { NewClient } from '../../src/clients/client-directory.js'
import type { ClientView, Operations, UserView } from './operations.js'

export interface GatewayTarget {
  /** The gateway's base URL (its PUBLIC_URL, or an address that reaches it). */
  url: URL
  clientId: string
  clientSecret: string
  /** Sent as User-Agent: the audit trail records it beside the admin client. */
  userAgent: string
}

/** The gateway answered with an error (`{ error, message }`), or could not be reached. */
export class GatewayRefusal extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message)
    this.name = 'GatewayRefusal'
  }
}

const TIMEOUT_MS = 30_000

export async function gatewayOperations(target: GatewayTarget): Promise<Operations> {
  // Paths are relative to the base, so a gateway behind a path prefix works too.
  const base = new URL(target.url.href.endsWith('/') ? target.url.href : `${target.url.href}/`)
  const accessToken = await adminToken(base, target)

  async function call<T>(method: string, path: string, options: { body?: unknown; query?: Record<string, string | undefined> } = {}): Promise<T> {
    const url = new URL(path, base)
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(name, value)
    const response = await send(url, {
      method,
      headers: {
        authorization: `Bearer ${accessToken}`,
        'user-agent': target.userAgent,
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    })
    if (response.status === 204) return undefined as T
    const answer = await jsonOf(response)
    if (!response.ok) throw refusal(response, answer)
    return answer as T
  }

  const segment = encodeURIComponent
  return {
    where: `the gateway at ${base.origin}`,
    createClient: (name) => call<NewClient>('POST', 'admin/clients', { body: { name } }),
    listClients: async () => (await call<{ clients: ClientView[] }>('GET', 'admin/clients')).clients,
    deleteClient: (clientId) => call('DELETE', `admin/clients/${segment(clientId)}`),
    grantClient: (clientId, resource, scopes) => call('POST', `admin/clients/${segment(clientId)}/grants`, { body: { resource, scopes } }),
    revokeClient: async (clientId, resource, scopes) =>
      (await call<{ revoked: number }>('DELETE', `admin/clients/${segment(clientId)}/grants`, { query: revokeQuery(resource, scopes) })).revoked,
    createRole: (name) => call('POST', 'admin/roles', { body: { name } }),
    listRoles: async () => (await call<{ roles: RoleSummary[] }>('GET', 'admin/roles')).roles,
    deleteRole: (name) => call('DELETE', `admin/roles/${segment(name)}`),
    grantRole: (name, resource, scopes) => call('POST', `admin/roles/${segment(name)}/grants`, { body: { resource, scopes } }),
    revokeRole: async (name, resource, scopes) =>
      (await call<{ revoked: number }>('DELETE', `admin/roles/${segment(name)}/grants`, { query: revokeQuery(resource, scopes) })).revoked,
    assignRole: (userId, role) => call('POST', `admin/users/${segment(userId)}/roles`, { body: { role } }),
    unassignRole: (userId, role) => call('DELETE', `admin/users/${segment(userId)}/roles/${segment(role)}`),
    rolesOf: async (userId) => (await call<{ roles: string[] }>('GET', `admin/users/${segment(userId)}/roles`)).roles,
    findUsers: async (criteria) => (await call<{ users: UserView[] }>('GET', 'admin/users', { query: { ...criteria } })).users,
    user: (userId) => call<UserView>('GET', `admin/users/${segment(userId)}`),
    auditTrail: async (userId, limit) =>
      (await call<{ events: AuditRecord[] }>('GET', `admin/users/${segment(userId)}/audit`, { query: { limit: String(limit) } })).events,
    close: async () => {},
  }
}

function revokeQuery(resource: string, scopes: string[]): Record<string, string | undefined> {
  return { resource, scope: scopes.length > 0 ? scopes.join(' ') : undefined }
}

/** An access token for the gateway itself carrying the admin scope. */
async function adminToken(base: URL, target: GatewayTarget): Promise<string> {
  // RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
  const basic = Buffer.from(`${formEncoded(target.clientId)}:${formEncoded(target.clientSecret)}`).toString('base64')
  const response = await send(new URL('oauth/token', base), {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', 'user-agent': target.userAgent },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'admin' }).toString(),
  })
  const answer = await jsonOf(response)
  if (response.ok && typeof (answer as { access_token?: unknown }).access_token === 'string') return (answer as { access_token: string }).access_token
  const code = (answer as { error?: unknown }).error
  if (code === 'invalid_client') {
    throw new GatewayRefusal('the gateway refused the admin client (check ADMIN_CLIENT_ID / --client-id and ADMIN_CLIENT_SECRET)', response.status, code)
  }
  if (code === 'invalid_scope' || code === 'invalid_target') {
    throw new GatewayRefusal(
      `the client ${target.clientId} does not hold the admin scope on the gateway; grant it with: npm run admin -- client:grant ${target.clientId} <TOKEN_AUDIENCE> admin`,
      response.status,
      code,
    )
  }
  throw refusal(response, answer)
}

async function send(url: URL, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) })
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause
    throw new GatewayRefusal(`cannot reach the gateway at ${url.origin}: ${cause?.code ?? cause?.message ?? (error as Error).message}`)
  }
}

async function jsonOf(response: Response): Promise<unknown> {
  const text = await response.text()
  try {
    return JSON.parse(text) as unknown
  } catch {
    return { message: `the gateway answered ${response.status} without JSON` }
  }
}

function refusal(response: Response, answer: unknown): GatewayRefusal {
  const { error, message } = answer as { error?: unknown; message?: unknown }
  const text = typeof message === 'string' ? message : `the gateway answered ${response.status}`
  return new GatewayRefusal(text, response.status, typeof error === 'string' ? error : undefined)
}

function formEncoded(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+')
}
