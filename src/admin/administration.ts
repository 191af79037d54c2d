// What operators do, whichever way they reach the gateway (the admin endpoints, or the CLI
// on the database): clients and their grants, roles and who holds them, finding a user.
// The rules live in the directories; this adds who did it, from where, to the audit trail
// (ASVS 16.3): every change, and every time an operator is shown a user.

import type { AuditLog, AuditEntry, RequestOrigin } from '../audit/audit-log.js'
import type { ClientDirectory, ClientSummary, NewClient } from '../clients/client-directory.js'
import type { AuditRecord, AuditTrail } from './audit-trail.js'
import type { RoleDirectory, RoleSummary } from './roles.js'
import type { SearchKind, UserLookup, UserRecord, UserSearch } from './user-lookup.js'

/** Who acts: "client:<id>" for an admin client, "operator:<login>" at the CLI; and from where. */
export interface Operator {
  actor: string
  origin?: RequestOrigin
}

export interface AdministrationServices {
  clients: Pick<ClientDirectory, 'create' | 'list' | 'delete' | 'grant' | 'revoke'>
  roles: Pick<RoleDirectory, 'create' | 'list' | 'delete' | 'grant' | 'revoke' | 'assign' | 'unassign' | 'rolesOf'>
  users: Pick<UserLookup, 'byId' | 'search'>
  auditTrail: Pick<AuditTrail, 'ofUser'>
  audit: Pick<AuditLog, 'record'>
}

export class Administration {
  constructor(private readonly services: AdministrationServices) {}

  async createClient(name: string, by: Operator): Promise<NewClient> {
    const client = await this.services.clients.create(name)
    // The name, not the secret: the secret is shown once, to the caller, and kept nowhere.
    await this.record(by, { action: 'client.created', target: `client:${client.clientId}`, detail: client.name })
    return client
  }

  async listClients(by: Operator): Promise<ClientSummary[]> {
    const clients = await this.services.clients.list()
    await this.record(by, { action: 'clients.listed' })
    return clients
  }

  async deleteClient(clientId: string, by: Operator): Promise<void> {
    await this.services.clients.delete(clientId)
    await this.record(by, { action: 'client.deleted', target: `client:${clientId}` })
  }

  async grantClient(clientId: string, resource: string, scopes: string[], by: Operator): Promise<void> {
    await this.services.clients.grant(clientId, resource, scopes)
    await this.record(by, { action: 'client.granted', target: `client:${clientId}`, detail: grantDetail(resource, scopes) })
  }

  /** Returns how many scopes went. */
  async revokeClient(clientId: string, resource: string, scopes: string[], by: Operator): Promise<number> {
    const revoked = await this.services.clients.revoke(clientId, resource, scopes)
    await this.record(by, { action: 'client.revoked', target: `client:${clientId}`, detail: grantDetail(resource, scopes) })
    return revoked
  }

  async createRole(name: string, by: Operator): Promise<RoleSummary> {
    await this.services.roles.create(name)
    await this.record(by, { action: 'role.created', target: `role:${name}` })
    return { name, grants: [], users: 0 }
  }

  async listRoles(by: Operator): Promise<RoleSummary[]> {
    const roles = await this.services.roles.list()
    await this.record(by, { action: 'roles.listed' })
    return roles
  }

  async deleteRole(name: string, by: Operator): Promise<void> {
    await this.services.roles.delete(name)
    await this.record(by, { action: 'role.deleted', target: `role:${name}` })
  }

  async grantRole(name: string, resource: string, scopes: string[], by: Operator): Promise<void> {
    await this.services.roles.grant(name, resource, scopes)
    await this.record(by, { action: 'role.granted', target: `role:${name}`, detail: grantDetail(resource, scopes) })
  }

  /** Returns how many scopes went. */
  async revokeRole(name: string, resource: string, scopes: string[], by: Operator): Promise<number> {
    const revoked = await this.services.roles.revoke(name, resource, scopes)
    await this.record(by, { action: 'role.revoked', target: `role:${name}`, detail: grantDetail(resource, scopes) })
    return revoked
  }

  /** Idempotent; audited by the role directory as role.assigned when it changed something. Returns the user's roles. */
  async assignRole(userId: string, name: string, by: Operator): Promise<string[]> {
    await this.services.roles.assign(userId, name, by.actor, by.origin)
    return await this.services.roles.rolesOf(userId)
  }

  /** Idempotent; audited as role.unassigned when it changed something. */
  async unassignRole(userId: string, name: string, by: Operator): Promise<void> {
    await this.services.roles.unassign(userId, name, by.actor, by.origin)
  }

  async rolesOf(userId: string, by: Operator): Promise<string[]> {
    const roles = await this.services.roles.rolesOf(userId)
    await this.record(by, { action: 'user.viewed', userId, detail: 'roles' })
    return roles
  }

  async user(userId: string, by: Operator): Promise<UserRecord> {
    const user = await this.services.users.byId(userId)
    await this.record(by, { action: 'user.viewed', userId, detail: 'record' })
    return user
  }

  /** Each user found is told in their own audit trail that an operator looked them up, and how. */
  async findUsers(criteria: UserSearch, by: Operator): Promise<UserRecord[]> {
    const { kind, users } = await this.services.users.search(criteria)
    const how = searchDetail(kind, criteria)
    if (users.length === 0) await this.record(by, { action: 'users.searched', detail: `${how}: no match` })
    for (const user of users) await this.record(by, { action: 'user.viewed', userId: user.id, detail: `record, found ${how}` })
    return users
  }

  /** The user's newest events; the reading itself is recorded after it, so it is not in its own answer. */
  async auditTrailOf(userId: string, limit: number | undefined, by: Operator): Promise<AuditRecord[]> {
    const events = await this.services.auditTrail.ofUser(userId, limit)
    await this.record(by, { action: 'user.viewed', userId, detail: 'audit trail' })
    return events
  }

  private async record(by: Operator, event: Pick<AuditEntry, 'action' | 'userId' | 'target' | 'detail'>): Promise<void> {
    await this.services.audit.record({ ...event, actor: by.actor, outcome: 'success', ...by.origin })
  }
}

function grantDetail(resource: string, scopes: string[]): string {
  return `${resource}: ${scopes.length > 0 ? scopes.join(' ') : '(every scope)'}`
}

/** By what, never the value: the email searched for is personal data the trail need not copy. */
function searchDetail(kind: SearchKind, criteria: UserSearch): string {
  return kind === 'email' ? 'by email' : `by ${criteria.provider} identity`
}
