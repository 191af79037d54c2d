// What the operator CLI can do, as one interface with two implementations: on the database
// directly (database-operations.ts) and through a running gateway's admin endpoints
// (gateway-operations.ts). Shapes are those of the admin endpoints' JSON answers.

import type { AuditRecord } from '../../src/admin/audit-trail.js'
import type { RoleSummary } from '../../src/admin/roles.js'
import type { UserSearch } from '../../src/admin/user-lookup.js'
import type { NewClient, ResourceGrant } from '../../src/clients/client-directory.js'

export interface ClientView {
  clientId: string
  name: string
  createdAt: string
  grants: ResourceGrant[]
}

export interface UserView {
  id: string
  nickname: string
  email?: string
  photo?: string
  createdAt: string
  identities: { provider: string; subject: string; linkedAt: string }[]
  roles: string[]
}

export interface Operations {
  /** Where the commands go, for messages: "the gateway at …" or "the database …". */
  readonly where: string
  createClient(name: string): Promise<NewClient>
  listClients(): Promise<ClientView[]>
  deleteClient(clientId: string): Promise<void>
  grantClient(clientId: string, resource: string, scopes: string[]): Promise<void>
  /** Every scope on the resource when `scopes` is empty. Returns how many went. */
  revokeClient(clientId: string, resource: string, scopes: string[]): Promise<number>
  createRole(name: string): Promise<void>
  listRoles(): Promise<RoleSummary[]>
  deleteRole(name: string): Promise<void>
  grantRole(name: string, resource: string, scopes: string[]): Promise<void>
  revokeRole(name: string, resource: string, scopes: string[]): Promise<number>
  assignRole(userId: string, role: string): Promise<void>
  unassignRole(userId: string, role: string): Promise<void>
  rolesOf(userId: string): Promise<string[]>
  findUsers(criteria: UserSearch): Promise<UserView[]>
  user(userId: string): Promise<UserView>
  auditTrail(userId: string, limit: number): Promise<AuditRecord[]>
  close(): Promise<void>
}
