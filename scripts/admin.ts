// Operator commands: machine-to-machine clients and their grants, roles and who holds
// them, finding a user, a user's audit trail. The rules live in src/clients/ and
// src/admin/; this file only reads the command line and prints. Two ways to reach them:
// through a running gateway's admin endpoints (--gateway / GATEWAY_URL), or on the
// database itself (scripts/admin/*-operations.ts).
//
//   npm run admin -- client:create ops
//   npm run admin -- --gateway https://login.example.com role:assign <user id> support

import { userInfo } from 'node:os'
import { parseArgs } from 'node:util'
import { ConfigError } from '../src/common/errors.js'
import { loadConfig } from '../src/config.js'
import type { ResourceGrant } from '../src/clients/client-directory.js'
import { GatewayError } from '../src/common/errors.js'
import { DataDirInUse } from '../src/storage/data-dir-lock.js'
import { GatewayRefusal, gatewayOperations } from './admin/gateway-operations.js'
import type { Operations, UserView } from './admin/operations.js'

const USAGE = `usage: npm run admin -- [--gateway <url> [--client-id <id>]] <command> [arguments]
       npm run admin -- <command> --help

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
users
  user:find --email <address>                      users with this email (exact, ignoring case)
  user:find --provider <name> --subject <id>       the user of a provider identity
  user:show <user id>                              a user, their identities and roles
  audit <user id> [limit]                          the user's newest audit events (default 50)

Where the commands go:
  through the gateway   --gateway <url> (or GATEWAY_URL), with an admin client: --client-id <id>
                        (or ADMIN_CLIENT_ID) and ADMIN_CLIENT_SECRET (from the environment only,
                        so it never shows in the process list). The gateway keeps running.
  on the database       without a gateway URL: DATABASE_URL, or the embedded database under
                        DATA_DIR, which one process at a time can open (while the gateway holds
                        it, this is refused: go through the gateway, or stop it first).

A resource is the audience of the tokens, e.g. the gateway's own TOKEN_AUDIENCE. The first
admin client is made on the database:
  npm run admin -- client:create ops
  npm run admin -- client:grant <client_id> <TOKEN_AUDIENCE> admin`

interface Command {
  /** The arguments, for the command's own --help. */
  synopsis: string
  summary: string
  /** Fewest and most arguments (Infinity: a list of scopes). */
  arity: [number, number]
  /** Options of this command besides the global ones. */
  options?: (keyof typeof COMMAND_OPTIONS)[]
  run(operations: Operations, args: string[], options: CommandOptions): Promise<void>
}

const GLOBAL_OPTIONS = {
  gateway: { type: 'string' },
  'client-id': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

const COMMAND_OPTIONS = {
  email: { type: 'string' },
  provider: { type: 'string' },
  subject: { type: 'string' },
} as const

type CommandOptions = { [Name in keyof typeof COMMAND_OPTIONS]?: string }

const COMMANDS: Record<string, Command> = {
  'client:create': {
    synopsis: '<name>',
    summary: 'Makes a machine-to-machine client and prints its id and secret. The secret is shown only this once.',
    arity: [1, 1],
    async run(operations, [name]) {
      const client = await operations.createClient(name!)
      print(`client_id: ${client.clientId}`, `client_secret: ${client.clientSecret}`, `name: ${client.name}`)
      print('', 'The secret is shown only this once and is stored only as a hash: keep it now.', 'Next: client:grant <client_id> <resource> <scope...>')
    },
  },
  'client:grant': {
    synopsis: '<client_id> <resource> <scope...>',
    summary: 'Lets the client ask for these scopes on the resource (an absolute URI, the audience of its tokens).',
    arity: [3, Infinity],
    async run(operations, [clientId, resource, ...scopes]) {
      await operations.grantClient(clientId!, resource!, scopes)
      print(`granted ${scopes.join(' ')} on ${resource} to ${clientId}`)
    },
  },
  'client:revoke': {
    synopsis: '<client_id> <resource> [scope...]',
    summary: 'Takes the scopes back, or every scope on the resource when none is named.',
    arity: [2, Infinity],
    async run(operations, [clientId, resource, ...scopes]) {
      const count = await operations.revokeClient(clientId!, resource!, scopes)
      print(`revoked ${count} scope${count === 1 ? '' : 's'} on ${resource} from ${clientId}`)
    },
  },
  'client:list': {
    synopsis: '',
    summary: 'Every client and its grants (never a secret).',
    arity: [0, 0],
    async run(operations) {
      const list = await operations.listClients()
      if (list.length === 0) return print('no clients')
      for (const client of list) print(`${client.clientId}  ${client.name}  created ${client.createdAt}`, ...grantLines(client.grants))
    },
  },
  'client:delete': {
    synopsis: '<client_id>',
    summary: 'Deletes the client: it gets no new tokens, and its tokens stop working on the admin endpoints at once.',
    arity: [1, 1],
    async run(operations, [clientId]) {
      await operations.deleteClient(clientId!)
      print(`deleted client ${clientId}`)
    },
  },
  'role:create': {
    synopsis: '<name>',
    summary: 'Makes a role: 1 to 64 letters, digits or . _ : -, starting with a letter or digit.',
    arity: [1, 1],
    async run(operations, [name]) {
      await operations.createRole(name!)
      print(`created role ${name}`)
    },
  },
  'role:grant': {
    synopsis: '<role> <resource> <scope...>',
    summary: "The role's users get these scopes in their access tokens for the resource.",
    arity: [3, Infinity],
    async run(operations, [name, resource, ...scopes]) {
      await operations.grantRole(name!, resource!, scopes)
      print(`role ${name} grants ${scopes.join(' ')} on ${resource}`)
    },
  },
  'role:revoke': {
    synopsis: '<role> <resource> [scope...]',
    summary: 'Takes the scopes back from the role, or every scope on the resource when none is named.',
    arity: [2, Infinity],
    async run(operations, [name, resource, ...scopes]) {
      const count = await operations.revokeRole(name!, resource!, scopes)
      print(`revoked ${count} scope${count === 1 ? '' : 's'} on ${resource} from role ${name}`)
    },
  },
  'role:assign': {
    synopsis: '<user id> <role>',
    summary: 'Gives the user (by the public id, the `sub` of their tokens) the role.',
    arity: [2, 2],
    async run(operations, [userId, name]) {
      await operations.assignRole(userId!, name!)
      print(`user ${userId} has role ${name} (in new access tokens within a minute)`)
    },
  },
  'role:unassign': {
    synopsis: '<user id> <role>',
    summary: 'Takes the role from the user.',
    arity: [2, 2],
    async run(operations, [userId, name]) {
      await operations.unassignRole(userId!, name!)
      print(`user ${userId} no longer has role ${name} (tokens already issued keep their scopes until they expire)`)
    },
  },
  'role:list': {
    synopsis: '[user id]',
    summary: 'Every role with its grants and how many users hold it, or the roles of one user.',
    arity: [0, 1],
    async run(operations, [userId]) {
      if (userId !== undefined) {
        const names = await operations.rolesOf(userId)
        return print(names.length > 0 ? names.join('\n') : `user ${userId} has no roles`)
      }
      const list = await operations.listRoles()
      if (list.length === 0) return print('no roles')
      for (const role of list) print(`${role.name}  (${role.users} user${role.users === 1 ? '' : 's'})`, ...grantLines(role.grants))
    },
  },
  'role:delete': {
    synopsis: '<role>',
    summary: 'Deletes the role; its users lose its scopes.',
    arity: [1, 1],
    async run(operations, [name]) {
      await operations.deleteRole(name!)
      print(`deleted role ${name}`)
    },
  },
  'user:find': {
    synopsis: '--email <address> | --provider <name> --subject <id>',
    summary: "Finds users by email (exact, ignoring case; several users may share one) or by a provider identity (the provider's user id).",
    arity: [0, 0],
    options: ['email', 'provider', 'subject'],
    async run(operations, _args, { email, provider, subject }) {
      if (email === undefined && (provider === undefined || subject === undefined)) throw new UsageError('name --email, or --provider and --subject', 'user:find')
      const users = await operations.findUsers({ email, provider, subject })
      if (users.length === 0) return print('no such user')
      for (const user of users) print(...userLines(user))
    },
  },
  'user:show': {
    synopsis: '<user id>',
    summary: 'The user, their identities and roles.',
    arity: [1, 1],
    async run(operations, [userId]) {
      print(...userLines(await operations.user(userId!)))
    },
  },
  audit: {
    synopsis: '<user id> [limit]',
    summary: "The user's newest audit events, newest first (default 50, at most 500).",
    arity: [1, 2],
    async run(operations, [userId, limit]) {
      const count = limit === undefined ? 50 : Number(limit)
      if (!Number.isInteger(count) || count < 1 || count > 500) throw new UsageError('the limit is a whole number of events, 1 to 500', 'audit')
      const events = await operations.auditTrail(userId!, count)
      if (events.length === 0) return print(`no events for user ${userId}`)
      for (const event of events) {
        const where = [event.ip, event.userAgent && JSON.stringify(event.userAgent)].filter(Boolean).join(' ')
        print(
          [event.at, event.action, event.outcome, `by ${event.actor}`, event.target, event.detail, event.sessionId && `session ${event.sessionId}`, where && `from ${where}`]
            .filter(Boolean)
            .join('  '),
        )
      }
    },
  },
}

class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage to show; the whole usage when undefined. */
    readonly command?: string,
  ) {
    super(message)
  }
}

function commandUsage(name: string): string {
  const command = COMMANDS[name]!
  return `usage: npm run admin -- [--gateway <url> [--client-id <id>]] ${name}${command.synopsis ? ` ${command.synopsis}` : ''}\n\n${command.summary}\n\nWithout --gateway (or GATEWAY_URL) it works on the database itself; see npm run admin -- --help.`
}

function grantLines(grants: ResourceGrant[]): string[] {
  return grants.length === 0 ? ['    (no grants)'] : grants.map((grant) => `    ${grant.resource}: ${grant.scopes.join(' ')}`)
}

function userLines(user: UserView): string[] {
  return [
    [user.id, user.nickname, user.email, `created ${user.createdAt}`].filter(Boolean).join('  '),
    ...user.identities.map((identity) => `    ${identity.provider} ${identity.subject}  linked ${identity.linkedAt}`),
    `    roles: ${user.roles.length > 0 ? user.roles.join(' ') : '(none)'}`,
  ]
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

/**
 * The gateway's URL: plain http only on loopback, where nothing listens on the way; the
 * admin client's secret and token travel on it.
 */
function gatewayUrlOf(value: string, command: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new UsageError(`the gateway URL "${value}" is not a URL`, command)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError('the gateway URL must be https://…', command)
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname) || url.hostname.startsWith('127.')
  if (url.protocol === 'http:' && !loopback) throw new UsageError('the gateway URL must be https:// (plain http only to localhost): the admin secret travels on it', command)
  if (url.search || url.hash || url.username || url.password) throw new UsageError('the gateway URL is the base URL only, without a query, fragment or credentials', command)
  return url
}

function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS }, allowPositionals: true, strict: true })
  } catch (error) {
    // Unknown flags and flags without their value: refused, never taken as arguments.
    const name = argv.find((arg) => Object.hasOwn(COMMANDS, arg))
    throw new UsageError((error as Error).message, name)
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv)
  const [name, ...args] = positionals
  if (name === undefined || name === 'help') {
    if (values.help || name === 'help') {
      print(USAGE)
      return 0
    }
    throw new UsageError('name a command')
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!command) throw new UsageError(`unknown command "${name}"`)
  if (values.help) {
    print(commandUsage(name))
    return 0
  }
  for (const option of Object.keys(COMMAND_OPTIONS) as (keyof typeof COMMAND_OPTIONS)[]) {
    if (values[option] !== undefined && !command.options?.includes(option)) throw new UsageError(`--${option} is not an option of ${name}`, name)
  }
  const [fewest, most] = command.arity
  if (args.length < fewest || args.length > most) throw new UsageError(`wrong number of arguments for ${name}`, name)

  const operations = await reach(values, name)
  try {
    await command.run(operations, args, { email: values.email, provider: values.provider, subject: values.subject })
  } finally {
    await operations.close()
  }
  return 0
}

/** Through the gateway when its URL is given; otherwise on the database (then the data folder's lock applies). */
async function reach(values: { gateway?: string; 'client-id'?: string }, command: string): Promise<Operations> {
  // An entry point, like src/main.ts: the one place the CLI reads its environment.
  const gateway = values.gateway ?? process.env.GATEWAY_URL
  if (gateway !== undefined && gateway !== '') {
    const url = gatewayUrlOf(gateway, command)
    const clientId = values['client-id'] ?? process.env.ADMIN_CLIENT_ID
    const clientSecret = process.env.ADMIN_CLIENT_SECRET
    if (!clientId || !clientSecret) {
      throw new UsageError('through the gateway, name the admin client: --client-id <id> (or ADMIN_CLIENT_ID) and ADMIN_CLIENT_SECRET in the environment', command)
    }
    return await gatewayOperations({ url, clientId, clientSecret, userAgent: `gateway-admin-cli (${operatorName()})` })
  }
  if (values['client-id'] !== undefined) throw new UsageError('--client-id is for --gateway: name the gateway too', command)
  const config = loadConfig(process.env)
  // Loaded only here: the database client takes seconds to load, which help, usage errors
  // and the way through the gateway do not need.
  const { databaseOperations } = await import('./admin/database-operations.js')
  return await databaseOperations(config, { actor: operatorName() })
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${error.command ? commandUsage(error.command) : USAGE}`)
    } else if (error instanceof ConfigError) {
      for (const problem of error.problems) console.error(`configuration: ${problem}`)
    } else if (error instanceof DataDirInUse) {
      console.error(`error: ${error.message}`)
      console.error('If the gateway holds it, run the command through the gateway instead: --gateway <its URL>, with an admin client (see npm run admin -- --help).')
    } else if (error instanceof GatewayError || error instanceof GatewayRefusal) {
      console.error(`error: ${error.message}`)
    } else {
      console.error(`error: ${error instanceof Error ? error.message : String(error)}`)
    }
    process.exit(1)
  },
)
