// ClientDirectory.authenticate does the same work for an unknown client id as for a known
// one with a wrong secret: one hash of the presented secret and one constant-time
// comparison of equal-length digests (against a decoy when the id is unknown), so the
// answer's timing cannot tell which client ids exist. Checked by counting those calls
// (node:crypto and ../src/secrets.js are replaced for the module under test), not by
// measuring time, which would be flaky and blind to a small difference.

import * as crypto from 'node:crypto'
import t from 'tap'
import type { PrismaClient } from '../src/generated/prisma/client.js'
import { InvalidClient } from '../src/common/errors.js'
import * as secrets from '../src/common/secrets.js'

const calls = { hash: 0, compare: [] as [number, number][] }
const { ClientDirectory } = await t.mockImport<typeof import('../src/clients/client-directory.js')>('../src/clients/client-directory.js', {
  'node:crypto': {
    ...crypto,
    timingSafeEqual(a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) {
      calls.compare.push([a.byteLength, b.byteLength])
      return crypto.timingSafeEqual(a, b)
    },
  },
  '../src/common/secrets.js': {
    ...secrets,
    hashSecret(secret: string) {
      calls.hash += 1
      return secrets.hashSecret(secret)
    },
  },
})

const known = { clientId: 'known-client', secret: secrets.randomSecret() }
/** Just enough of Prisma for authenticate(): one client row, looked up by id. */
const prisma = {
  oAuthClient: {
    findUnique: async ({ where }: { where: { clientId: string } }) =>
      where.clientId === known.clientId ? { clientId: known.clientId, secretHash: secrets.hashSecret(known.secret) } : null,
  },
} as unknown as PrismaClient
const directory = new ClientDirectory(prisma)

/** The hashing and comparing one authenticate() call does, and how it ends. */
async function workOf(clientId: string, clientSecret: string) {
  calls.hash = 0
  calls.compare = []
  const outcome = await directory.authenticate({ clientId, clientSecret }).then(
    (client) => client.clientId,
    (error: unknown) => (error instanceof InvalidClient ? 'invalid_client' : error),
  )
  return { outcome, hashes: calls.hash, comparisons: calls.compare }
}

t.test('the right secret: one hash, one comparison of two SHA-256 digests', async (t) => {
  t.same(await workOf(known.clientId, known.secret), { outcome: known.clientId, hashes: 1, comparisons: [[32, 32]] })
})

t.test('a known id with a wrong secret and an unknown id do the same work', async (t) => {
  const wrongSecret = await workOf(known.clientId, secrets.randomSecret())
  const unknownId = await workOf('no-such-client', secrets.randomSecret())
  t.same(wrongSecret, { outcome: 'invalid_client', hashes: 1, comparisons: [[32, 32]] })
  t.same(unknownId, wrongSecret, 'an unknown id is hashed and compared (against the decoy) just the same')
  const unknownWithKnownSecret = await workOf('no-such-client', known.secret)
  t.same(unknownWithKnownSecret, wrongSecret, "even with another client's real secret")
})
