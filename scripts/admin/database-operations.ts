// The CLI on the gateway's database itself: PostgreSQL (DATABASE_URL), which the gateway
// may be using meanwhile, or the embedded PGlite under DATA_DIR, which one process at a
// time may open (the lock in src/storage/data-dir-lock.ts refuses a second one at once).
// Everything goes through the same Administration the admin endpoints use, so the rules
// and the audit trail are the same either way.

import { Administration, type Operator } from '../../src/admin/administration.js'
import { AuditTrail } from '../../src/admin/audit-trail.js'
import { RoleDirectory } from '../../src/admin/roles.js'
import type { UserRecord } from '../../src/admin/user-lookup.js'
import { UserLookup } from '../../src/admin/user-lookup.js'
import { AuditLog } from '../../src/audit/audit-log.js'
import { ClientDirectory } from '../../src/clients/client-directory.js'
import type { Config } from '../../src/config.js'
import { UserDirectory } from '../../src/identity/users.js'
import { NO_ACCOUNT_EVENTS } from '../../src/events/account-events.js'
import { openDatabase } from '../../src/storage/database.js'
import type { Operations, UserView } from './operations.js'

export async function databaseOperations(config: Pick<Config, 'databaseUrl' | 'dataDir'>, operator: Operator): Promise<Operations> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
  const audit = new AuditLog(database, { warn: (_object, message) => console.error(`warning: ${message}`) })
  const clients = new ClientDirectory(database.prisma)
  const administration = new Administration({
    clients,
    roles: new RoleDirectory(database.prisma, audit),
    users: new UserLookup(database.prisma),
    auditTrail: new AuditTrail(new UserDirectory(database, NO_ACCOUNT_EVENTS), audit),
    audit,
  })
  const by = operator
  return {
    where: config.databaseUrl ? 'the database at DATABASE_URL' : `the embedded database under ${config.dataDir}`,
    createClient: (name) => administration.createClient(name, by),
    listClients: async () =>
      (await administration.listClients(by)).map((client) => ({ ...client, createdAt: client.createdAt.toISOString() })),
    deleteClient: (clientId) => administration.deleteClient(clientId, by),
    grantClient: (clientId, resource, scopes) => administration.grantClient(clientId, resource, scopes, by),
    revokeClient: (clientId, resource, scopes) => administration.revokeClient(clientId, resource, scopes, by),
    createRole: async (name) => void (await administration.createRole(name, by)),
    listRoles: () => administration.listRoles(by),
    deleteRole: (name) => administration.deleteRole(name, by),
    grantRole: (name, resource, scopes) => administration.grantRole(name, resource, scopes, by),
    revokeRole: (name, resource, scopes) => administration.revokeRole(name, resource, scopes, by),
    assignRole: async (userId, role) => void (await administration.assignRole(userId, role, by)),
    unassignRole: (userId, role) => administration.unassignRole(userId, role, by),
    rolesOf: (userId) => administration.rolesOf(userId, by),
    findUsers: async (criteria) => (await administration.findUsers(criteria, by)).map(userView),
    user: async (userId) => userView(await administration.user(userId, by)),
    auditTrail: (userId, limit) => administration.auditTrailOf(userId, limit, by),
    close: () => database.close(),
  }
}

function userView(record: UserRecord): UserView {
  return {
    ...record,
    createdAt: record.createdAt.toISOString(),
    identities: record.identities.map((identity) => ({ ...identity, linkedAt: identity.linkedAt.toISOString() })),
  }
}
