// The gateway's Redis connection sends the commands issued in one turn of the event loop
// in one socket write: under load, many requests' commands share one wake-up of
// redis-server instead of paying one each (bench/README.md). Batched or not, every command
// gets its own answer, in the order it was issued, and a Redis that goes away still fails
// them fast.

import t from 'tap'
import type { Redis } from 'ioredis'
import { StorageUnavailable } from '../src/common/errors.js'
import { connectRedis, inRedis, type RedisClient } from '../src/storage/redis.js'
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

t.test(`${COMMANDS} commands issued in one turn reach Redis together and each gets its own answer`, async (t) => {
  await client.set('gw:batch:warm', '1')
  const before = await readsByRedis(client)
  const answers = await Promise.all(
    Array.from({ length: COMMANDS }, (_, i) => inRedis(client, () => client.incrby('gw:batch:counter', i + 1))),
  )
  // One read for the batch (two if Redis reads before all of it has arrived), one for INFO.
  const reads = (await readsByRedis(client)) - before
  t.ok(reads <= 4, `Redis read the ${COMMANDS} commands in ${reads - 1} read(s), not one each`)
  t.same(
    answers.map(Number),
    Array.from({ length: COMMANDS }, (_, i) => ((i + 1) * (i + 2)) / 2),
    'each answer is its own command’s, in the order they were issued',
  )
})

t.test('a write and the read behind it, issued in one turn, run in that order', async (t) => {
  const [, seen, , seenAgain] = await Promise.all([
    inRedis(client, () => client.set('gw:batch:order', 'first')),
    inRedis(client, () => client.get('gw:batch:order')),
    inRedis(client, () => client.set('gw:batch:order', 'second')),
    inRedis(client, () => client.get('gw:batch:order')),
  ])
  t.equal(seen, 'first')
  t.equal(seenAgain, 'second')
})

t.test('commands issued one after another each go out at once', async (t) => {
  // A login awaits its Redis calls one by one: none waits for company.
  for (let i = 0; i < 20; i++) t.equal(await inRedis(client, () => client.incr('gw:batch:sequential')), i + 1)
})

t.test('a connection lost before its batch left: every command of it fails (503), none hangs', async (t) => {
  const batch = Array.from({ length: 10 }, () => inRedis(client, () => client.get('gw:batch:lost')))
  // Still in the turn that issued them: the batch has not been written yet.
  client.stream.destroy()
  const outcomes = await Promise.allSettled(batch)
  t.same(
    outcomes.map((outcome) => outcome.status === 'rejected' && outcome.reason instanceof StorageUnavailable),
    Array(10).fill(true),
  )
  await until('the connection to come back', () => client.status === 'ready')
  t.equal(await inRedis(client, () => client.incr('gw:batch:after-loss')), 1, 'and the connection is back for the next ones')
})
