// Machine-to-machine clients (RFC 6749 §2, confidential clients of the client_credentials
// grant) and what each may ask for: scopes on resources. A client secret has 256 random
// bits and is stored only as its SHA-256 (a slow hash adds nothing to a secret that cannot
// be guessed); it is shown once, when it is made.

import { timingSafeEqual } from 'node:crypto'
import type { PrismaClient } from '../generated/prisma/client.js'
import { InvalidClient, InvalidRequest, NotFound } from '../common/errors.js'
import { hashSecret, randomId, randomSecret } from '../common/secrets.js'
import { inDatabase } from '../storage/database.js'
import { isResourceIndicator, isScopeToken } from './scopes.js'

/** What a client presents: its id and secret (RFC 6749 §2.3.1). */
export interface ClientCredentials {
  clientId: string
  clientSecret: string
}

export interface NewClient {
  clientId: string
  /** Shown once; only its hash is kept. */
  clientSecret: string
  name: string
}

export interface ResourceGrant {
  resource: string
  scopes: string[]
}

export interface ClientSummary {
  clientId: string
  name: string
  createdAt: Date
  grants: ResourceGrant[]
}

export interface AuthenticatedClient {
  clientId: string
}

const MAX_NAME_LENGTH = 100

export class ClientDirectory {
  /** Compared against when the client id is unknown, so that case costs what a wrong secret costs. */
  private readonly decoyHash = hashSecret(randomSecret())

  constructor(private readonly prisma: PrismaClient) {}

  async create(name: string): Promise<NewClient> {
    const label = name.trim()
    if (label === '' || label.length > MAX_NAME_LENGTH) throw new InvalidRequest(`a client name has 1 to ${MAX_NAME_LENGTH} characters`)
    const clientId = randomId()
    const clientSecret = randomSecret()
    await inDatabase(() => this.prisma.oAuthClient.create({ data: { clientId, name: label, secretHash: hashSecret(clientSecret) } }))
    return { clientId, clientSecret, name: label }
  }

  /** Lets the client ask for these scopes on this resource; granting twice changes nothing. */
  async grant(clientId: string, resource: string, scopes: string[]): Promise<void> {
    checkGrant(resource, scopes)
    const client = await this.find(clientId)
    await inDatabase(() =>
      this.prisma.clientGrant.createMany({
        data: scopes.map((scope) => ({ clientId: client.id, resource, scope })),
        skipDuplicates: true,
      }),
    )
  }

  /** Takes back these scopes on the resource, or every scope on it when none are named. Returns how many went. */
  async revoke(clientId: string, resource: string, scopes: string[] = []): Promise<number> {
    const client = await this.find(clientId)
    const { count } = await inDatabase(() =>
      this.prisma.clientGrant.deleteMany({
        where: { clientId: client.id, resource, ...(scopes.length > 0 ? { scope: { in: scopes } } : {}) },
      }),
    )
    return count
  }

  async delete(clientId: string): Promise<void> {
    const { count } = await inDatabase(() => this.prisma.oAuthClient.deleteMany({ where: { clientId } }))
    if (count === 0) throw new NotFound(`no client "${clientId}"`)
  }

  async list(): Promise<ClientSummary[]> {
    const clients = await inDatabase(() =>
      this.prisma.oAuthClient.findMany({
        orderBy: { id: 'asc' },
        select: { clientId: true, name: true, createdAt: true, grants: { select: { resource: true, scope: true } } },
      }),
    )
    return clients.map((client) => ({ clientId: client.clientId, name: client.name, createdAt: client.createdAt, grants: byResource(client.grants) }))
  }

  /**
   * Checks a client's secret (RFC 6749 §2.3.1). The hashes are compared in constant time,
   * and an unknown id goes through the same hash and comparison against a decoy, so the
   * answer's timing does not tell which client ids exist.
   */
  async authenticate(credentials: ClientCredentials): Promise<AuthenticatedClient> {
    const client = await inDatabase(() =>
      this.prisma.oAuthClient.findUnique({ where: { clientId: credentials.clientId }, select: { clientId: true, secretHash: true } }),
    )
    const expected = Buffer.from(client?.secretHash ?? this.decoyHash, 'base64url')
    const presented = Buffer.from(hashSecret(credentials.clientSecret), 'base64url')
    const matches = expected.length === presented.length && timingSafeEqual(expected, presented)
    if (!client || !matches) throw new InvalidClient('client authentication failed')
    return { clientId: client.clientId }
  }

  /** The scopes a client is granted on a resource, sorted; undefined when the client does not exist (any more). */
  async scopesOn(clientId: string, resource: string): Promise<string[] | undefined> {
    const client = await inDatabase(() =>
      this.prisma.oAuthClient.findUnique({
        where: { clientId },
        select: { grants: { where: { resource }, select: { scope: true }, orderBy: { scope: 'asc' } } },
      }),
    )
    return client?.grants.map((grant) => grant.scope)
  }

  private async find(clientId: string): Promise<{ id: bigint }> {
    const client = await inDatabase(() => this.prisma.oAuthClient.findUnique({ where: { clientId }, select: { id: true } }))
    if (!client) throw new NotFound(`no client "${clientId}"`)
    return client
  }
}

/** What an operator may grant: scopes by RFC 6749 §3.3 on a resource indicator by RFC 8707 §2. */
export function checkGrant(resource: string, scopes: string[]): void {
  if (!isResourceIndicator(resource)) throw new InvalidRequest(`"${resource}" is not a resource indicator (an absolute URI without a fragment)`)
  if (scopes.length === 0) throw new InvalidRequest('name at least one scope')
  const malformed = scopes.find((scope) => !isScopeToken(scope))
  if (malformed !== undefined) throw new InvalidRequest(`"${malformed}" is not a scope (printable ASCII without spaces, quotes or backslashes)`)
}

export function byResource(rows: { resource: string; scope: string }[]): ResourceGrant[] {
  const grants = new Map<string, string[]>()
  for (const row of rows) grants.set(row.resource, [...(grants.get(row.resource) ?? []), row.scope])
  return [...grants].sort(([a], [b]) => a.localeCompare(b)).map(([resource, scopes]) => ({ resource, scopes: scopes.sort() }))
}
