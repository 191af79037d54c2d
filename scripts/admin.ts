// Operator commands: machine-to-machine clients and their grants, roles and who holds
// them, a user's audit trail. The rules live in src/clients/ and src/admin/; this file
// only reads the command line and prints.
//
//   npm run admin -- client:create ops
//   npm run admin -- client:grant <client_id> https://gateway.example admin

import { userInfo } from 'node:os'
import { AuditTrail } from '../src/admin/audit-trail.js'
import { RoleDirectory } from '../src/admin/roles.js'
import { AuditLog } from '../src/audit/audit-log.js'
import { ClientDirectory, type ResourceGrant } from '../src/clients/client-directory.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { GatewayError } from '../src/errors.js'
import { UserDirectory } from '../src/identity/users.js'
import { openDatabase } from '../src/storage/database.js'

const USAGE = `usage: npm run admin -- <command> [arguments]

machine-to-machine clients
  client:create <name>                             make a client; prints its id and secret (the secret only now)
  client:grant <client_id> <resource> <scope...>   let the client ask for these scopes on the resource
  client:revoke <client_id> <resource> [scope...]  take them back (every scope on the resource if none is named)
  client:list                                      every client and its grants
  client:delete <client_id>                        the client's tokens stop working on the admin endpoints at once
roles
  role:create <name>
  role:grant <role> <resource> <scope...>
  role:revoke <role> <resource> [scope...]
  role:assign <user id> <role>
  role:unassign <user id> <role>
  role:list [user id]                              every role, or the roles of one user
  role:delete <role>
audit
  audit <user id> [limit]                          the user's newest audit events (default 50)

The database is the gateway's: DATABASE_URL, or the embedded one under DATA_DIR (which one
process at a time can open: stop the gateway first). A resource is the audience of the
tokens, e.g. the gateway's own TOKEN_AUDIENCE. The first admin client:
  npm run admin -- client:create ops
  npm run admin -- client:grant <client_id> <TOKEN_AUDIENCE> admin`

interface Operator {
  clients: ClientDirectory
  roles: RoleDirectory
  auditTrail: AuditTrail
  /** Who acts, for the audit trail. */
  actor: string
}

interface Command {
  /** Fewest and most arguments (Infinity: a list of scopes). */
  arity: [number, number]
  run(operator: Operator, args: string[]): Promise<void>
}

const COMMANDS: Record<string, Command> = {
  'client:create': {
    arity: [1, 1],
    async run({ clients }, [name]) {
      const client = await clients.create(name!)
      print(`client_id: ${client.clientId}`, `client_secret: ${client.clientSecret}`, `name: ${client.name}`)
      print('', 'The secret is shown only this once and is stored only as a hash: keep it now.', 'Next: client:grant <client_id> <resource> <scope...>')
    },
  },
  'client:grant': {
    arity: [3, Infinity],
    async run({ clients }, [clientId, resource, ...scopes]) {
      await clients.grant(clientId!, resource!, scopes)
      print(`granted ${scopes.join(' ')} on ${resource} to ${clientId}`)
    },
  },
  'client:revoke': {
    arity: [2, Infinity],
    async run({ clients }, [clientId, resource, ...scopes]) {
      const count = await clients.revoke(clientId!, resource!, scopes)
      print(`revoked ${count} scope${count === 1 ? '' : 's'} on ${resource} from ${clientId}`)
    },
  },
  'client:list': {
    arity: [0, 0],
    async run({ clients }) {
      const list = await clients.list()
      if (list.length === 0) return print('no clients')
      for (const client of list) {
        print(`${client.clientId}  ${client.name}  created ${client.createdAt.toISOString()}`, ...grantLines(client.grants))
      }
    },
  },
  'client:delete': {
    arity: [1, 1],
    async run({ clients }, [clientId]) {
      await clients.delete(clientId!)
      print(`deleted client ${clientId}`)
    },
  },
  'role:create': {
    arity: [1, 1],
    async run({ roles }, [name]) {
      await roles.create(name!)
      print(`created role ${name}`)
    },
  },
  'role:grant': {
    arity: [3, Infinity],
    async run({ roles }, [name, resource, ...scopes]) {
      await roles.grant(name!, resource!, scopes)
      print(`role ${name} grants ${scopes.join(' ')} on ${resource}`)
    },
  },
  'role:revoke': {
    arity: [2, Infinity],
    async run({ roles }, [name, resource, ...scopes]) {
      const count = await roles.revoke(name!, resource!, scopes)
      print(`revoked ${count} scope${count === 1 ? '' : 's'} on ${resource} from role ${name}`)
    },
  },
  'role:assign': {
    arity: [2, 2],
    async run({ roles, actor }, [userId, name]) {
      await roles.assign(userId!, name!, actor)
      print(`user ${userId} has role ${name} (in new access tokens within a minute)`)
    },
  },
  'role:unassign': {
    arity: [2, 2],
    async run({ roles, actor }, [userId, name]) {
      await roles.unassign(userId!, name!, actor)
      print(`user ${userId} no longer has role ${name} (tokens already issued keep their scopes until they expire)`)
    },
  },
  'role:list': {
    arity: [0, 1],
    async run({ roles }, [userId]) {
      if (userId !== undefined) {
        const names = await roles.rolesOf(userId)
        return print(names.length > 0 ? names.join('\n') : `user ${userId} has no roles`)
      }
      const list = await roles.list()
      if (list.length === 0) return print('no roles')
      for (const role of list) print(`${role.name}  (${role.users} user${role.users === 1 ? '' : 's'})`, ...grantLines(role.grants))
    },
  },
  'role:delete': {
    arity: [1, 1],
    async run({ roles }, [name]) {
      await roles.delete(name!)
      print(`deleted role ${name}`)
    },
  },
  audit: {
    arity: [1, 2],
    async run({ auditTrail }, [userId, limit]) {
      const count = limit === undefined ? 50 : Number(limit)
      if (!Number.isInteger(count) || count < 1) throw new UsageError('the limit is a whole number of events, at least 1')
      const events = await auditTrail.ofUser(userId!, count)
      if (events.length === 0) return print(`no events for user ${userId}`)
      for (const event of events) {
        const where = [event.ip, event.userAgent && JSON.stringify(event.userAgent)].filter(Boolean).join(' ')
        print([event.at, event.action, event.outcome, `by ${event.actor}`, event.sessionId && `session ${event.sessionId}`, where && `from ${where}`].filter(Boolean).join('  '))
      }
    },
  },
}

class UsageError extends Error {}

function grantLines(grants: ResourceGrant[]): string[] {
  return grants.length === 0 ? ['    (no grants)'] : grants.map((grant) => `    ${grant.resource}: ${grant.scopes.join(' ')}`)
}

function print(...lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`)
}

function operatorName(): string {
  try {
    return `operator:${userInfo().username}`
  } catch {
    return 'operator'
  }
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined) throw new UsageError('name a command')
  if (name === 'help' || name === '--help' || name === '-h') {
    print(USAGE)
    return 0
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!command) throw new UsageError(`unknown command "${name}"`)
  const [fewest, most] = command.arity
  if (args.length < fewest || args.length > most) throw new UsageError(`wrong number of arguments for ${name}`)

  const config = loadConfig(process.env)
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
  try {
    const audit = new AuditLog(database.prisma, { warn: (_object, message) => console.error(`warning: ${message}`) })
    const users = new UserDirectory(database.prisma)
    await command.run(
      {
        clients: new ClientDirectory(database.prisma),
        roles: new RoleDirectory(database.prisma, audit),
        auditTrail: new AuditTrail(users, audit),
        actor: operatorName(),
      },
      args,
    )
  } finally {
    await database.close()
  }
  return 0
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${USAGE}`)
    } else if (error instanceof ConfigError) {
      for (const problem of error.problems) console.error(`configuration: ${problem}`)
    } else if (error instanceof GatewayError) {
      console.error(`error: ${error.message}`)
    } else {
      console.error(`error: ${error instanceof Error ? error.message : String(error)}`)
    }
    process.exit(1)
  },
)
