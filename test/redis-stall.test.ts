// A Redis stall must never log a user out. Redis is frozen (SIGSTOP) while mobile clients
// refresh and retry one second after each 503, as the hostile test run did. Commands
// written during the freeze run when Redis resumes, after their clients were told 503, so
// rotations land that nobody saw: the clients' retries must still get their session back.

import t from 'tap'
import { connectRedis, inRedis } from '../src/storage/redis.js'
import { loginWithGoogle, startTestGateway, type TestGateway } from './support/gateway.js'
import { startRedis } from './support/redis.js'

const SESSIONS = 20
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const gateway = await startTestGateway({ database: 'pglite' })
t.teardown(() => gateway.close())

const refresh = (gateway: TestGateway, refreshToken: string) =>
  gateway.app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })

interface ClientRun {
  token: string
  lost: boolean
  unavailable: number
  slowestUnavailableMs: number
}

/** One mobile client: refresh, and after a 503 wait a second and retry with the token it holds. */
async function refreshUntilAnswered(run: ClientRun): Promise<void> {
  for (;;) {
    const started = Date.now()
    const answer = await refresh(gateway, run.token)
    if (answer.statusCode === 200) {
      run.token = answer.json().refreshToken
      return
    }
    if (answer.statusCode !== 503) {
      run.lost = true
      return
    }
    run.unavailable += 1
    run.slowestUnavailableMs = Math.max(run.slowestUnavailableMs, Date.now() - started)
    await sleep(1000)
  }
}

for (const freezeSeconds of [12, 30]) {
  t.test(`Redis frozen ${freezeSeconds} s while ${SESSIONS} sessions refresh and retry: no session is lost`, async (t) => {
    const runs: ClientRun[] = []
    for (let i = 0; i < SESSIONS; i++) {
      const { refreshToken } = (await loginWithGoogle(gateway, { sub: `stall-${freezeSeconds}-${i}`, name: 'Stella' })).json()
      runs.push({ token: refreshToken, lost: false, unavailable: 0, slowestUnavailableMs: 0 })
    }

    gateway.testRedis.pause()
    const resumed = sleep(freezeSeconds * 1000).then(() => gateway.testRedis.resume())
    // The clients' refreshes start spread over the first two seconds of the freeze.
    await Promise.all(runs.map(async (run, i) => {
      await sleep((i * 2000) / SESSIONS)
      await refreshUntilAnswered(run)
    }))
    await resumed

    const unavailable = runs.reduce((sum, run) => sum + run.unavailable, 0)
    const slowest = Math.max(...runs.map((run) => run.slowestUnavailableMs))
    t.comment(`${unavailable} answers were 503, the slowest after ${slowest} ms`)
    t.ok(unavailable >= SESSIONS, 'the freeze was felt: every client got 503s first')
    t.ok(slowest <= 2500, `each 503 came within the 1.5 s Redis deadline, plus scheduling (${slowest} ms)`)
    t.same(runs.filter((run) => run.lost).length, 0, 'no client was told its session was over')

    // Afterwards every session goes on refreshing as normal.
    for (const run of runs) {
      for (let next = 0; next < 2; next++) {
        const answer = await refresh(gateway, run.token)
        if (answer.statusCode !== 200) run.lost = true
        else run.token = answer.json().refreshToken
      }
    }
    t.same(runs.filter((run) => run.lost).length, 0, `0 of ${SESSIONS} sessions lost`)
  })
}

t.test('REDIS_COMMAND_TIMEOUT_MS: a gateway told to wait longer for a far-away Redis rides out a 2 s stall', async (t) => {
  const patient = await startTestGateway({ database: 'pglite', env: { REDIS_COMMAND_TIMEOUT_MS: '6000' } })
  t.teardown(() => patient.close())
  const { refreshToken } = (await loginWithGoogle(patient, { sub: 'stall-patient', name: 'Pat' })).json()
  patient.testRedis.pause()
  const resumed = sleep(2000).then(() => patient.testRedis.resume())
  const answer = await refresh(patient, refreshToken)
  await resumed
  t.equal(answer.statusCode, 200, 'answered once Redis was back, not 503 after the default 1.5 s')
})

t.test('Redis answering in time while the gateway is busy past the deadline: no 503', async (t) => {
  const { refreshToken } = (await loginWithGoogle(gateway, { sub: 'stall-busy-process', name: 'Bea' })).json()
  // Redis, frozen for 0.7 s, answers the refresh's command within the 1.5 s deadline; but
  // from 0.2 s the process computes for 1.8 s without a turn of its event loop (a slow
  // synchronous step, an embedded database, a starved CPU). When it looks again, the
  // deadline has passed and the answer is waiting on the socket. The busy stretch runs where
  // setImmediate callbacks run, so the next turn of the event loop runs its timers before it
  // reads any socket.
  gateway.testRedis.pauseFor(700)
  const refreshed = refresh(gateway, refreshToken)
  await sleep(200)
  await new Promise((resolve) => setImmediate(resolve))
  const busyUntil = Date.now() + 1800
  while (Date.now() < busyUntil);
  t.equal((await refreshed).statusCode, 200, "Redis's answer waiting on the socket is read before the deadline counts as missed")
})

t.test('Redis stalled for 4 s while the gateway starts: the start waits for it, and its first call works', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // A Redis still loading its data, or busy with a long command, when the gateway (re)starts.
  redis.pauseFor(4000)
  const began = Date.now()
  const client = await connectRedis({ url: redis.url }, { warn() {} })
  t.teardown(() => client.disconnect())
  t.ok(Date.now() - began >= 3500, 'connected once Redis answered')
  t.equal(await inRedis(client, () => client.set('gw:after-stall', '1')), 'OK', 'and its first call is answered')
})
