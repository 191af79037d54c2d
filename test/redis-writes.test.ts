// Refresh rotations issued in one turn of the event loop leave for Redis in one socket write
// (gathered() in src/storage/redis.ts): under refresh load many requests share one wake-up
// of redis-server instead of paying one each (bench/README.md). Everything else is written
// at once, and takes the gathered commands before it along, so nothing is reordered and a
// login's calls never wait for the end of a turn. Gathered or not, every command gets its
// own answer, and a Redis that goes away still fails them fast.

import t from 'tap'
import type { Redis } from 'ioredis'
import { StorageUnavailable } from '../src/common/errors.js'
import { connectRedis, gathered, inRedis, type RedisClient } from '../src/storage/redis.js'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'
import { startRedis } from './support/redis.js'
import { until } from './support/until.js'

const COMMANDS = 50

const redis = await startRedis()
t.teardown(() => redis.stop())
const client = (await connectRedis({ url: redis.url }, { warn() {} })) as Redis
t.teardown(() => client.disconnect())

/** How many times redis-server has read from its clients' sockets (INFO stats). */
async function readsByRedis(client: RedisClient): Promise<number> {
  const stats = await client.info('stats')
  return Number(/total_reads_processed:(\d+)/.exec(stats)?.[1])
}

const gatheredIncrement = (key: string, by: number) => inRedis(client, () => gathered(client, () => client.incrby(key, by)))

t.test(`${COMMANDS} gathered commands issued in one turn reach Redis together, each with its own answer`, async (t) => {
  await client.set('gw:batch:warm', '1')
  const before = await readsByRedis(client)
  const answers = await Promise.all(Array.from({ length: COMMANDS }, (_, i) => gatheredIncrement('gw:batch:counter', i + 1)))
  // One read for the batch (two if Redis reads before all of it has arrived), one for INFO.
  const reads = (await readsByRedis(client)) - before
  t.ok(reads <= 4, `Redis read the ${COMMANDS} commands in ${reads - 1} read(s), not one each`)
  t.same(
    answers.map(Number),
    Array.from({ length: COMMANDS }, (_, i) => ((i + 1) * (i + 2)) / 2),
    'each answer is its own command’s, in the order they were issued',
  )
})

t.test('a command that is not gathered is handed to the socket at once, with the gathered ones before it', async (t) => {
  const first = gatheredIncrement('gw:batch:order', 1)
  t.ok(client.stream.writableCorked > 0, 'the gathered command waits for the end of the turn')
  const seen = inRedis(client, () => client.get('gw:batch:order'))
  t.equal(client.stream.writableCorked, 0, 'the other command did not wait, and took the gathered one along')
  const second = gatheredIncrement('gw:batch:order', 10)
  const seenAgain = inRedis(client, () => client.get('gw:batch:order'))
  t.same(await Promise.all([first, seen, second, seenAgain]), [1, '1', 11, '11'], 'they ran in the order they were issued')
})

t.test('commands issued one after another each go out at once', async (t) => {
  // A login awaits its Redis calls one by one: none waits for company.
  for (let i = 0; i < 20; i++) {
    const answer = inRedis(client, () => client.incr('gw:batch:sequential'))
    t.equal(client.stream.writableCorked, 0)
    t.equal(await answer, i + 1)
  }
})

t.test('a connection lost before its gathered commands left: every one of them fails (503), none hangs', async (t) => {
  const batch = Array.from({ length: 10 }, () => gatheredIncrement('gw:batch:lost', 1))
  // Still in the turn that issued them: the batch has not been written yet.
  client.stream.destroy()
  const outcomes = await Promise.allSettled(batch)
  t.same(
    outcomes.map((outcome) => outcome.status === 'rejected' && outcome.reason instanceof StorageUnavailable),
    Array(10).fill(true),
  )
  await until('the connection to come back', () => client.status === 'ready')
  t.equal(await gatheredIncrement('gw:batch:after-loss', 1), 1, 'and the connection is back for the next ones')
})

t.test('refreshes that arrive together share the writes to Redis, and each gets its own successor', async (t) => {
  const gateway = await startTestGateway({ database: 'pglite' })
  t.teardown(() => gateway.close())
  const sessions = 40
  const tokens: string[] = []
  for (let i = 0; i < sessions; i++) tokens.push((await loginWithGoogle(gateway, { sub: `together-${i}`, name: `together ${i}` })).json().refreshToken)
  const before = await readsByRedis(gateway.redis)
  const answers = await Promise.all(tokens.map((refreshToken) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })))
  const reads = (await readsByRedis(gateway.redis)) - before - 1
  t.same(answers.map((answer) => answer.statusCode), Array(sessions).fill(200))
  t.equal(new Set(answers.map((answer) => answer.json().refreshToken)).size, sessions, 'a successor each')
  // One read, two if Redis wakes before all of the write has arrived.
  t.ok(reads <= 2, `Redis read the ${sessions} rotations in ${reads} read(s), not one each`)
  const again = await Promise.all(answers.map((answer) => gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken: answer.json().refreshToken } })))
  t.same(again.map((answer) => answer.statusCode), Array(sessions).fill(200), 'and each successor is its session’s live token')
})
