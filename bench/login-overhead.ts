// Part of `npm run bench`: what the gateway adds to a login on top of the provider's own
// time. A returning user logs in with Kakao's authorization code (POST /auth/login, the
// emulated Kakao on loopback): the gateway exchanges the code, validates the ID token,
// reads Kakao's profile API, finds the account by its Kakao subject, starts a session and
// signs the tokens. Each login's overhead is its time at the gateway minus Kakao's own time
// in that login: from the moment the emulator's HTTP server has a request's headers to the
// moment its answer is written (Node's http.server diagnostics channels). The gateway's HTTP
// client and the loopback hops are the gateway's, so they count as overhead. Logins run one
// at a time, so each login's provider time is its own. Goal: median overhead <= 2 ms.
// Also printed: how long the thread was busy in each login (its event loop active), which
// says whether logins here wait on their peers or on the thread itself; and, for comparison
// with earlier runs, the time the gateway's own provider-call timer measured (the metrics
// observer's durations, which include its HTTP client's work).
//
// Each login is a different user who signed up earlier and comes back after their cached
// scopes ran out (SCOPE_CACHE_TTL), as most returning users do: nothing of theirs is warm.
// The gateway itself is warm: a thousand logins come before the measured ones, as in any
// gateway that has been up for a while. V8 optimises a function only after many calls, and a
// login's code is spread over fastify, openid-client, jose, undici, ioredis and pg: after 50
// logins much of it is still interpreted (bench/README.md has the figures).
//
//   BENCH_LOGINS=300          measured logins
//   BENCH_LOGIN_WARMUP=1000   unmeasured logins before them
//   BENCH_LOGIN_ACCOUNTS      returning users the logins cycle through (default: one per
//                             login; fewer: the same users again within a minute, cache warm)

import { subscribe } from 'node:diagnostics_channel'
import type { IncomingMessage, Server } from 'node:http'
import { performance } from 'node:perf_hooks'
import { startEmulatedProviders } from '../emulators/providers.js'
import { startPostgresCluster } from '../test/support/postgres.js'
import { freeLoopbackPort } from '../src/common/loopback.js'
import type { ProviderCall } from '../providers/provider-http.js'
import { sessionKeys } from '../verifier/session-keys.js'
import { onCleanUp, readNumber, runBench, startGateway, startRedis, tempDir, type RunningGateway } from './harness.js'

const LOGINS = Math.floor(readNumber('BENCH_LOGINS', 300, 1))
const WARMUP = Math.floor(readNumber('BENCH_LOGIN_WARMUP', 1000, 0))
const ACCOUNTS = Math.floor(readNumber('BENCH_LOGIN_ACCOUNTS', WARMUP + LOGINS, 1))
const GOAL_MS = 2
const REDIRECT_URI = 'https://app.example/callback'

async function main(): Promise<number> {
  const dir = await tempDir('gateway-login-')
  const redis = await startRedis(dir)
  onCleanUp(() => redis.stop())
  const providers = await startEmulatedProviders({ publicUrl: 'http://127.0.0.1:1', redirectUris: [REDIRECT_URI] })
  onCleanUp(() => providers.stop())
  // PostgreSQL, as in production, when its binaries are here (the embedded database is far slower).
  const database = await startPostgresCluster().catch(() => undefined)
  if (database) onCleanUp(() => database.stop())
  const running = await startGateway(dir, redis.url, {
    ...providers.env,
    ...(database ? { DATABASE_URL: database.url } : {}),
    ALLOWED_REDIRECT_URIS: REDIRECT_URI,
    // The metrics observer is where the gateway times its provider calls.
    METRICS_PORT: String(await freeLoopbackPort()),
    RATE_LIMIT_LOGIN: '1000000',
    JOB_CONCURRENCY: '0',
  })
  const metrics = running.gateway.services.metrics!
  let providerSeconds = 0
  const observed = metrics.providerCalled.bind(metrics)
  metrics.providerCalled = (call: ProviderCall) => {
    providerSeconds += call.seconds
    observed(call)
  }

  // Kakao's own time: its servers' handling of each request, headers in to answer out.
  const kakaoPorts = new Set([providers.env.KAKAO_AUTH_URL, providers.env.KAKAO_API_URL].map((url) => Number(new URL(url!).port)))
  const arrived = new WeakMap<IncomingMessage, number>()
  let kakaoOwnMs = 0
  const isKakao = (server: Server) => {
    const address = server.address()
    return typeof address === 'object' && address !== null && kakaoPorts.has(address.port)
  }
  subscribe('http.server.request.start', (message) => {
    const { request, server } = message as { request: IncomingMessage; server: Server }
    // Read the clock first: telling which server this is (server.address()) is the bench's work, not the gateway's.
    const now = performance.now()
    if (isKakao(server)) arrived.set(request, now)
  })
  subscribe('http.server.response.finish', (message) => {
    const { request } = message as { request: IncomingMessage }
    const at = arrived.get(request)
    if (at !== undefined) kakaoOwnMs += performance.now() - at
  })

  const accounts = Array.from({ length: ACCOUNTS }, (_, index) => ({ id: String(7_000_000 + index), nickname: `bench-${index}`, email: `bench${index}@example.com` }))
  for (const account of accounts) {
    const first = await login(running, providers.kakao, account)
    if (first.body.status !== 'signup_required') continue
    const signup = await running.gateway.app.inject({ method: 'POST', url: '/auth/signup', payload: { signupToken: first.body.signupToken, nickname: account.nickname } })
    if (signup.statusCode !== 200) throw new Error(`signup failed: ${signup.statusCode} ${signup.body}`)
  }

  // They come back long after signing up: their cached scopes have run out.
  const signedUp = await running.gateway.database.prisma.user.findMany({ select: { publicId: true } })
  if (signedUp.length > 0) await running.gateway.services.redis.del(...signedUp.map((user) => sessionKeys.scopes(user.publicId)))

  const overheads: number[] = []
  const totals: number[] = []
  const busy: number[] = []
  const waits: number[] = []
  const kakaoOwn: number[] = []
  const overCalls: number[] = []
  for (let i = 0; i < WARMUP + LOGINS; i++) {
    const { took, busyMs, providerMs, ownMs, body } = await login(running, providers.kakao, accounts[i % ACCOUNTS]!)
    if (body.status !== 'authenticated') throw new Error(`a returning user's login answered ${JSON.stringify(body)}`)
    if (i < WARMUP) continue
    totals.push(took)
    busy.push(busyMs)
    waits.push(providerMs)
    kakaoOwn.push(ownMs)
    overheads.push(took - ownMs)
    overCalls.push(took - providerMs)
  }
  const at = (values: number[], quantile: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * quantile))]!
  const ms = (value: number) => `${value.toFixed(2)} ms`
  console.log(`login: ${LOGINS} Kakao code logins (POST /auth/login) of ${ACCOUNTS} returning users, one at a time, after ${WARMUP} unmeasured ones; database: ${database ? 'PostgreSQL' : 'embedded PGlite (no PostgreSQL binaries here)'}`)
  console.log(`  at the gateway     median ${ms(at(totals, 0.5))}, p90 ${ms(at(totals, 0.9))}`)
  console.log(`  Kakao's own time   median ${ms(at(kakaoOwn, 0.5))}, p90 ${ms(at(kakaoOwn, 0.9))}   (its servers, from a request's headers to its answer: token endpoint, profile API, key set when not cached)`)
  console.log(`  gateway overhead   median ${ms(at(overheads, 0.5))}, p90 ${ms(at(overheads, 0.9))}   (at the gateway minus Kakao's own time; goal: median <= ${GOAL_MS} ms)`)
  console.log(`  thread busy        median ${ms(at(busy, 0.5))} of each login   (its event loop active, Kakao's own work included; the rest is waiting on Redis, PostgreSQL and the thread pool)`)
  console.log(`  (for comparison with earlier runs: the gateway timed its Kakao calls at median ${ms(at(waits, 0.5))}; at the gateway minus that: median ${ms(at(overCalls, 0.5))}, p90 ${ms(at(overCalls, 0.9))})`)
  return 0

  /** One login: start, play the user at Kakao, post the code back; timed from the POST to its answer. */
  async function login(running: RunningGateway, kakao: typeof providers.kakao, account: { id: string; nickname: string; email: string }) {
    const { app } = running.gateway
    const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'kakao', redirectUri: REDIRECT_URI } })
    if (start.statusCode !== 200) throw new Error(`login/start failed: ${start.statusCode} ${start.body}`)
    const back = await kakao.authorize(start.json().authorizationUrl, account)
    const code = back.searchParams.get('code')
    const state = back.searchParams.get('state')
    const waitedBefore = providerSeconds
    const ownBefore = kakaoOwnMs
    const loopBefore = performance.eventLoopUtilization()
    const began = performance.now()
    const answer = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', code, state, redirectUri: REDIRECT_URI } })
    const took = performance.now() - began
    const busyMs = performance.eventLoopUtilization(loopBefore).active
    if (answer.statusCode !== 200) throw new Error(`login failed: ${answer.statusCode} ${answer.body}`)
    return { took, busyMs, providerMs: (providerSeconds - waitedBefore) * 1000, ownMs: kakaoOwnMs - ownBefore, body: answer.json() }
  }
}

await runBench(main)
