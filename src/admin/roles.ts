// Roles: named sets of scopes on resources that operators give users. The scopes a user
// holds on a resource (the union over their roles) go into the access tokens issued for
// it (src/identity/user-scopes.ts reads them, and picks up changes within a minute).
// Assigning and unassigning roles are user events, so they go to the audit trail with the
// role as their target (the operators' other changes are audited by Administration).

import type { AuditLog, RequestOrigin } from '../audit/audit-log.js'
import { byResource, checkGrant, type ResourceGrant } from '../clients/client-directory.js'
import type { PrismaClient } from '../generated/prisma/client.js'
import { Conflict, InvalidRequest, NotFound } from '../common/errors.js'
import { inDatabase } from '../storage/database.js'

export interface RoleSummary {
  name: string
  grants: ResourceGrant[]
  /** How many users hold the role. */
  users: number
}

/** A letter or digit first: "." and ".." would not survive as a URL path segment (/admin/roles/{name}). */
const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/

export class RoleDirectory {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly audit: Pick<AuditLog, 'record'>,
  ) {}

  async create(name: string): Promise<void> {
    if (!ROLE_NAME.test(name)) throw new InvalidRequest('a role name has 1 to 64 letters, digits or . _ : -, and starts with a letter or digit')
    try {
      await inDatabase(() => this.prisma.role.create({ data: { name } }))
    } catch (error) {
      if ((error as { code?: unknown }).code === 'P2002') throw new Conflict(`the role "${name}" exists already`, { cause: error })
      throw error
    }
  }

  async delete(name: string): Promise<void> {
    const { count } = await inDatabase(() => this.prisma.role.deleteMany({ where: { name } }))
    if (count === 0) throw new NotFound(`no role "${name}"`)
  }

  /** The role grants these scopes on the resource; granting twice changes nothing. */
  async grant(name: string, resource: string, scopes: string[]): Promise<void> {
    checkGrant(resource, scopes)
    const role = await this.find(name)
    await inDatabase(() =>
      this.prisma.roleScope.createMany({ data: scopes.map((scope) => ({ roleId: role.id, resource, scope })), skipDuplicates: true }),
    )
  }

  /** Takes back these scopes on the resource, or all of them when none are named. Returns how many went. */
  async revoke(name: string, resource: string, scopes: string[] = []): Promise<number> {
    const role = await this.find(name)
    const { count } = await inDatabase(() =>
      this.prisma.roleScope.deleteMany({ where: { roleId: role.id, resource, ...(scopes.length > 0 ? { scope: { in: scopes } } : {}) } }),
    )
    return count
  }

  /** Gives a user (by public id) a role; `actor` is who did it, for the audit trail, from `origin`. Idempotent. */
  async assign(userId: string, name: string, actor: string, origin: RequestOrigin = {}): Promise<void> {
    const [user, role] = await Promise.all([this.findUser(userId), this.find(name)])
    const { count } = await inDatabase(() =>
      this.prisma.userRole.createMany({ data: [{ userId: user.id, roleId: role.id }], skipDuplicates: true }),
    )
    if (count > 0) await this.audit.record({ action: 'role.assigned', userId, actor, outcome: 'success', target: `role:${name}`, ...origin })
  }

  /** Takes a role from a user. Idempotent. */
  async unassign(userId: string, name: string, actor: string, origin: RequestOrigin = {}): Promise<void> {
    const [user, role] = await Promise.all([this.findUser(userId), this.find(name)])
    const { count } = await inDatabase(() => this.prisma.userRole.deleteMany({ where: { userId: user.id, roleId: role.id } }))
    if (count > 0) await this.audit.record({ action: 'role.unassigned', userId, actor, outcome: 'success', target: `role:${name}`, ...origin })
  }

  async list(): Promise<RoleSummary[]> {
    const roles = await inDatabase(() =>
      this.prisma.role.findMany({
        orderBy: { name: 'asc' },
        select: { name: true, scopes: { select: { resource: true, scope: true } }, _count: { select: { users: true } } },
      }),
    )
    return roles.map((role) => ({ name: role.name, grants: byResource(role.scopes), users: role._count.users }))
  }

  /** The roles of a user, by name. */
  async rolesOf(userId: string): Promise<string[]> {
    const user = await this.findUser(userId)
    const rows = await inDatabase(() =>
      this.prisma.userRole.findMany({ where: { userId: user.id }, select: { role: { select: { name: true } } }, orderBy: { role: { name: 'asc' } } }),
    )
    return rows.map((row) => row.role.name)
  }

  private async find(name: string): Promise<{ id: bigint }> {
    const role = await inDatabase(() => this.prisma.role.findUnique({ where: { name }, select: { id: true } }))
    if (!role) throw new NotFound(`no role "${name}"`)
    return role
  }

  private async findUser(publicId: string): Promise<{ id: bigint }> {
    const user = await inDatabase(() => this.prisma.user.findUnique({ where: { publicId }, select: { id: true } }))
    if (!user) throw new NotFound(`no user "${publicId}"`)
    return user
  }
}
