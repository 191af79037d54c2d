// The operator CLI beside a running gateway on the embedded database, as in the issue that
// lost an operator's writes: the CLI on the data folder is refused at once while the gateway
// holds it, and the same commands through the gateway (--gateway, an admin client) work
// without stopping it: a client made there gets tokens, a role given there is in the user's
// access token, and all of it is still there after the gateway stops. Every command has
// --help, and an unknown flag is refused instead of being taken as an argument.

import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import * as jose from 'jose'
import t from 'tap'
import { loginWithGoogle, nativeAppAuthorization, PUBLIC_URL, startTestGateway } from './support/gateway.js'

// Each command is a Node process of its own, and PGlite on disk starts slowly on a busy machine.
t.setTimeout(600_000)

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gateway-cli-'))
t.teardown(() => rm(dataDir, { recursive: true, force: true }))

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The CLI as an operator runs it, with only the environment given (no DATABASE_URL or gateway of the test's own). */
function cli(env: Record<string, string>, ...args: string[]): Promise<Run> {
  const { PATH, HOME } = process.env
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/admin.ts', ...args],
      { env: { PATH: PATH ?? '', HOME: HOME ?? '', NODE_ENV: 'test', ...env }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    )
  })
}

const onDatabase = (...args: string[]) => cli({ DATA_DIR: dataDir }, ...args)
const field = (run: Run, name: string) => new RegExp(`^${name}: (\\S+)$`, 'm').exec(run.stdout)?.[1]

// The first admin client is made on the database, before the gateway runs (PUBLIC_URL is
// the test gateway's TOKEN_AUDIENCE).
const created = await onDatabase('client:create', 'ops')
const ops = { id: field(created, 'client_id')!, secret: field(created, 'client_secret')! }
const granted = await onDatabase('client:grant', ops.id, PUBLIC_URL, 'admin')
// Set-up, not yet the story: a failure here stops the file (tap takes no assertion before its tests).
if (created.code !== 0 || granted.code !== 0) throw new Error(`the first admin client: ${created.stderr} ${granted.stderr}`)

const gateway = await startTestGateway({ database: 'pglite', env: { DATA_DIR: dataDir } })
let gatewayOpen = true
t.teardown(() => gatewayOpen && gateway.close())

const address = await gateway.app.listen({ port: 0, host: '127.0.0.1' })
const throughGateway = (...args: string[]) => cli({ GATEWAY_URL: address, ADMIN_CLIENT_ID: ops.id, ADMIN_CLIENT_SECRET: ops.secret }, ...args)

t.test('on the data folder while the gateway holds it: refused at once, saying who holds it and what to do instead', async (t) => {
  const clientsBefore = await gateway.database.prisma.oAuthClient.count()
  const refused = await onDatabase('client:create', 'lost')
  t.equal(refused.code, 1)
  t.match(refused.stderr, `error: the embedded database in ${path.join(dataDir, 'pglite')} is in use by process ${process.pid} on this host`)
  t.match(refused.stderr, '--gateway <its URL>', 'points to the way that works')
  t.notMatch(refused.stdout, /client_id/, 'no success is printed')
  t.equal(await gateway.database.prisma.oAuthClient.count(), clientsBefore, 'and nothing was written')
})

t.test('through the gateway: a client made there gets a token for what it was granted there', async (t) => {
  const made = await throughGateway('client:create', 'billing')
  t.equal(made.code, 0, made.stderr)
  const billing = { id: field(made, 'client_id')!, secret: field(made, 'client_secret')! }
  t.ok(billing.id && billing.secret, 'prints the id and the secret')
  t.match(made.stdout, /shown only this once/)

  const granted = await throughGateway('client:grant', billing.id, 'https://payments.example', 'payment:charge', 'payment:refund')
  t.equal(granted.code, 0, granted.stderr)
  const token = await fetch(`${address}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${billing.id}:${billing.secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://payments.example', scope: 'payment:charge' }),
  })
  t.equal(token.status, 200)
  t.match(jose.decodeJwt(((await token.json()) as { access_token: string }).access_token), { aud: 'https://payments.example', scope: 'payment:charge', client_id: billing.id })

  const listed = await throughGateway('client:list')
  t.match(listed.stdout, new RegExp(`${billing.id}  billing  created `))
  t.match(listed.stdout, 'https://payments.example: payment:charge payment:refund')
  t.notOk(listed.stdout.includes(billing.secret), 'never the secret again')

  const revoked = await throughGateway('client:revoke', billing.id, 'https://payments.example', 'payment:refund')
  t.match(revoked.stdout, `revoked 1 scope on https://payments.example from ${billing.id}`)

  const events = await gateway.database.prisma.auditEvent.findMany({ where: { target: `client:${billing.id}` }, orderBy: { id: 'asc' } })
  t.match(
    events,
    [{ action: 'client.created' }, { action: 'client.granted' }, { action: 'client.revoked', detail: 'https://payments.example: payment:refund' }],
    'each step in the audit trail',
  )
  t.ok(events.every((event) => event.actor === `client:${ops.id}` && event.ip === '127.0.0.1' && /^gateway-admin-cli \(operator/.test(event.userAgent ?? '')), 'by the admin client, from the CLI')
})

t.test("through the gateway: a role given there is in the user's next access token, and the user can be found", async (t) => {
  const user = (await loginWithGoogle(gateway, { sub: 'cli-user', name: 'Cli User' })).json()
  for (const args of [
    ['role:create', 'support'],
    ['role:grant', 'support', 'https://support.example', 'ticket:read'],
    ['role:assign', user.user.id, 'support'],
  ]) {
    const run = await throughGateway(...args)
    t.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`)
  }
  const login = await gateway.app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { ...(await nativeAppAuthorization(gateway, { sub: 'cli-user', name: 'Cli User' })), resource: 'https://support.example' },
  })
  t.equal(login.statusCode, 200, login.body)
  t.match(jose.decodeJwt(login.json().accessToken), { sub: user.user.id, scope: 'ticket:read' }, 'the role is in the token')

  const found = await throughGateway('user:find', '--provider', 'google', '--subject', 'cli-user')
  t.equal(found.code, 0, found.stderr)
  t.match(found.stdout, new RegExp(`^${user.user.id}  Cli User  created `, 'm'))
  t.match(found.stdout, /^ {4}google cli-user {2}linked /m)
  t.match(found.stdout, /^ {4}roles: support$/m)
  t.match((await throughGateway('role:list', user.user.id)).stdout, /^support$/m)
  t.match((await throughGateway('role:list')).stdout, /support {2}\(1 user\)\n {4}https:\/\/support\.example: ticket:read/)
  t.match((await throughGateway('user:show', user.user.id)).stdout, /roles: support/)
  const trail = await throughGateway('audit', user.user.id, '5')
  t.match(trail.stdout, new RegExp(`role\\.assigned  success  by client:${ops.id}  role:support`))
  t.match((await throughGateway('user:find', '--email', 'nobody@example.com')).stdout, /^no such user$/m)
})

t.test("the gateway's refusals reach the operator: exit 1 and its message", async (t) => {
  const cases: [string[], RegExp][] = [
    [['role:create', 'support'], /error: the role "support" exists already/],
    [['client:delete', 'AAAAAAAAAAAAAAAAAAAAAA'], /error: no client "AAAAAAAAAAAAAAAAAAAAAA"/],
    [['role:assign', 'AAAAAAAAAAAAAAAAAAAAAA', 'support'], /error: no user "AAAAAAAAAAAAAAAAAAAAAA"/],
    [['client:grant', ops.id, 'not a uri', 'x'], /not a resource indicator/],
  ]
  for (const [args, message] of cases) {
    const run = await throughGateway(...args)
    t.equal(run.code, 1, args.join(' '))
    t.match(run.stderr, message)
  }
  const wrongSecret = await cli({ GATEWAY_URL: address, ADMIN_CLIENT_ID: ops.id, ADMIN_CLIENT_SECRET: 'wrong' }, 'client:list')
  t.equal(wrongSecret.code, 1)
  t.match(wrongSecret.stderr, /the gateway refused the admin client/)
  const noSecret = await cli({ GATEWAY_URL: address, ADMIN_CLIENT_ID: ops.id }, 'client:list')
  t.match(noSecret.stderr, /ADMIN_CLIENT_SECRET/)
  const plainHttp = await cli({ ADMIN_CLIENT_ID: ops.id, ADMIN_CLIENT_SECRET: ops.secret }, '--gateway', 'http://gateway.example', 'client:list')
  t.equal(plainHttp.code, 1)
  t.match(plainHttp.stderr, /must be https:\/\//, 'the secret never goes over plain http to another host')
})

t.test('--help on every command prints its help and does nothing; unknown flags are refused', async (t) => {
  const clientsBefore = await gateway.database.prisma.oAuthClient.count()
  const help = await throughGateway('client:create', '--help')
  t.equal(help.code, 0)
  t.match(help.stdout, /^usage: npm run admin -- .*client:create <name>$/m)
  t.equal(await gateway.database.prisma.oAuthClient.count(), clientsBefore, 'no client named --help')
  t.equal((await onDatabase('client:create', '-h')).code, 0, 'nor -h, and help needs no database')

  const usage = await onDatabase('--help')
  t.equal(usage.code, 0)
  const commands = [...new Set([...usage.stdout.matchAll(/^ {2}([a-z]+:[a-z]+|audit) /gm)].map((match) => match[1]!))]
  t.equal(commands.length, 15, `every command is listed: ${commands.join(', ')}`)
  // Three at a time: each is a Node process of its own.
  for (let i = 0; i < commands.length; i += 3) {
    const batch = commands.slice(i, i + 3)
    const runs = await Promise.all(batch.map((command) => onDatabase(command, '--help')))
    runs.forEach((run, j) => {
      t.equal(run.code, 0, `${batch[j]} --help`)
      t.match(run.stdout, new RegExp(`^usage: npm run admin -- .*${batch[j]}`, 'm'))
    })
  }

  for (const args of [
    ['client:create', 'ops', '--frobnicate'],
    ['client:create', '--name=ops'],
    ['client:list', '--email', 'a@example.com'],
    ['user:find', '--email'],
  ]) {
    const refused = await throughGateway(...args)
    t.equal(refused.code, 1, `${args.join(' ')}: exit 1`)
    t.match(refused.stderr, /^error: /, 'says why')
  }
  t.equal(await gateway.database.prisma.oAuthClient.count(), clientsBefore, 'none of it made a client')
  const dashed = await throughGateway('client:create', '--', '--help')
  t.equal(dashed.code, 0, 'a name that starts with a dash goes after --')
  t.match(dashed.stdout, /^name: --help$/m)
})

t.test('after the gateway stops, the folder is free again and holds everything done through it', async (t) => {
  await gateway.close()
  gatewayOpen = false
  const listed = await onDatabase('client:list')
  t.equal(listed.code, 0, listed.stderr)
  t.match(listed.stdout, /  billing  created /)
  t.match(listed.stdout, 'https://payments.example: payment:charge')
  t.match((await onDatabase('role:list')).stdout, /support {2}\(1 user\)/)
})
