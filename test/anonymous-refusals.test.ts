// Anonymous refusals (no credential we can verify) are counted, not stored: one log line
// per address per window with the count, and a bounded number of tallies however many
// requests or addresses arrive. A fake clock drives the windows; one case uses real time
// to show that the last count is logged even when nothing follows it.

import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { AnonymousRefusals, OTHER_ADDRESSES } from '../src/audit/audit-log.js'

const MINUTE = 60_000

function tally(options: { maxAddresses?: number; windowMs?: number; clock?: { now: number } } = {}) {
  const lines: { ip: string; count: number }[] = []
  const log = {
    warn(object: unknown) {
      const { ip, count } = (object as { audit: { ip: string; count: number } }).audit
      lines.push({ ip, count })
    },
  }
  const clock = options.clock
  const refusals = new AnonymousRefusals(log, { ...options, ...(clock ? { now: () => clock.now } : {}) })
  return { refusals, lines }
}

t.test('one address: a line at once, then one line per window with what it counted', async (t) => {
  const clock = { now: 0 }
  const { refusals, lines } = tally({ clock })
  for (let i = 0; i < 500; i++) refusals.count('admin.denied', '198.51.100.1')
  t.same(lines, [{ ip: '198.51.100.1', count: 1 }], 'the first probe is seen at once, the other 499 are not a line each')

  clock.now = MINUTE - 1
  refusals.count('admin.denied', '198.51.100.1')
  t.equal(lines.length, 1, 'still the same window')
  clock.now = MINUTE
  refusals.count('admin.denied', '198.51.100.1')
  t.same(lines[1], { ip: '198.51.100.1', count: 500 }, 'the window closes with its count')
  t.equal(lines.length, 2)

  clock.now = 2 * MINUTE
  refusals.count('admin.denied', '203.0.113.9')
  t.same(lines.slice(2), [{ ip: '198.51.100.1', count: 1 }, { ip: '203.0.113.9', count: 1 }], "another address's refusal closes the window too")
  clock.now = 4 * MINUTE
  refusals.count('admin.denied', '203.0.113.9')
  t.same(lines.slice(4), [{ ip: '203.0.113.9', count: 1 }], 'quiet windows end without a line; a new refusal opens a new window')
  t.equal(refusals.size, 1, 'and the quiet tallies are gone')
})

t.test('the tallies are bounded: addresses beyond the limit share one', async (t) => {
  const clock = { now: 0 }
  const { refusals, lines } = tally({ clock, maxAddresses: 10 })
  for (let i = 0; i < 10_000; i++) refusals.count('admin.denied', `2001:db8::${i.toString(16)}`)
  t.equal(refusals.size, 11, '10 addresses and the shared tally')
  t.equal(lines.length, 11, 'one line for each, not 10 000')
  t.same(lines[10], { ip: OTHER_ADDRESSES, count: 1 })

  clock.now = MINUTE
  refusals.count('admin.denied', '2001:db8::ffff')
  t.same(lines.slice(11), [{ ip: OTHER_ADDRESSES, count: 9_989 }, { ip: '2001:db8::ffff', count: 1 }], 'the shared count when its window ends; the freed room goes to the next address')
  t.ok(refusals.size <= 11)
})

t.test('the last count is logged when its window ends, even if no refusal follows', async (t) => {
  const { refusals, lines } = tally({ windowMs: 30 })
  for (let i = 0; i < 5; i++) refusals.count('admin.denied', '198.51.100.2')
  // Two windows: the one that counted, then the quiet one that ends the tally.
  for (const until = Date.now() + 2000; refusals.size > 0 && Date.now() < until; ) await sleep(10)
  t.same(lines, [{ ip: '198.51.100.2', count: 1 }, { ip: '198.51.100.2', count: 4 }])
  t.equal(refusals.size, 0, 'nothing left behind once the quiet window also ended')
})
