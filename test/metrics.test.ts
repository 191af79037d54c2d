// Metrics as an operator reads them: with METRICS_PORT set, a Prometheus scrape of
// /metrics on that port (never on the public one) shows logins, provider calls, refreshes,
// session endings, 429s, 503s and the job queue move as the gateway is used, and no label carries a user
// id, a token or a query string.

import t from 'tap'
import { ConfigError } from '../src/common/errors.js'
import { loadConfig } from '../src/config.js'
import { freeLoopbackPort } from '../src/common/loopback.js'
import { googleSdkIdToken, loginWithGoogle, REDIRECT_URI, redisReconnected, startTestGateway } from './support/gateway.js'
import { until } from './support/until.js'

const metricsPort = await freeLoopbackPort()
// RATE_LIMIT_LOGIN is the default budget; this file makes far fewer logins than that per route.
const gateway = await startTestGateway({
  listen: true,
  database: 'pglite',
  env: { METRICS_PORT: String(metricsPort), RATE_LIMIT_LOGIN: '30', RATE_LIMIT_REFRESH: '5', MAX_SESSIONS_PER_USER: '2' },
})
t.teardown(() => gateway.close())
const { app } = gateway

/** Everything the tests saw that must never appear in a scrape: user ids, tokens, codes, query values. */
const secrets = new Set<string>()
function keep<T extends Record<string, unknown>>(answer: T): T {
  for (const key of ['accessToken', 'refreshToken', 'signupToken', 'state']) if (typeof answer[key] === 'string') secrets.add(answer[key] as string)
  const user = answer.user as { id?: string } | undefined
  if (user?.id) secrets.add(user.id)
  return answer
}

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A scrape, as Prometheus makes it: GET /metrics on METRICS_PORT. */
async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const answer = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  if (answer.status !== 200) throw new Error(`scrape failed: ${answer.status}`)
  const text = await answer.text()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match) continue
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!.replace(/\\(.)/g, '$1')
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return { text, samples }
}

/** The sum of the samples of `name` whose labels include `labels`. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0)
}

/** Runs `work` between two scrapes; the result tells how much a series moved. */
async function movedBy(work: () => Promise<unknown>) {
  const before = (await scrape()).samples
  await work()
  const after = (await scrape()).samples
  return (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels)
}

async function login(sub: string, name?: string) {
  const answer = await loginWithGoogle(gateway, { sub, name })
  if (answer.statusCode !== 200) throw new Error(`login failed: ${answer.statusCode} ${answer.body}`)
  return keep(answer.json()) as { status: string; refreshToken: string; accessToken: string; user: { id: string } }
}

const refresh = async (refreshToken: string) => {
  const answer = await app.inject({ method: 'POST', url: '/auth/token', payload: { refreshToken } })
  if (answer.statusCode === 200) keep(answer.json())
  return answer
}

t.test('metrics are served on METRICS_PORT only, in Prometheus text format', async (t) => {
  const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
  t.equal(scraped.status, 200)
  t.match(scraped.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await scraped.text()
  t.match(text, /^# HELP gateway_logins_total /m)
  t.match(text, /^process_cpu_user_seconds_total \d/m, "the process's default metrics")
  t.match(text, /^nodejs_eventloop_lag_seconds \d/m)

  const publicAnswer = await fetch(`${gateway.config.publicUrl}/metrics`)
  t.equal(publicAnswer.status, 404, 'the public port does not serve /metrics')
  await publicAnswer.text()
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
})

t.test('METRICS_PORT unset: no metrics; the same as PORT: refused', async (t) => {
  t.equal(loadConfig({ PORT: '4000' }).metricsPort, undefined)
  t.equal(loadConfig({ PORT: '4000', METRICS_PORT: '9464' }).metricsPort, 9464)
  t.throws(() => loadConfig({ PORT: '4000', METRICS_PORT: '4000' }), ConfigError)
  t.throws(() => loadConfig({ METRICS_PORT: 'metrics' }), ConfigError)
})

t.test('logins count by provider and outcome, refusals by their error code', async (t) => {
  const moved = await movedBy(async () => {
    t.equal((await login('metrics-ann', 'Ann')).status, 'authenticated')
    t.equal((await login('metrics-nameless')).status, 'signup_required')
    // Kakao refuses a code it never issued (KOE320): the gateway answers invalid_grant.
    const kakao = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { provider: 'kakao', code: 'never-issued', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) },
    })
    t.equal(kakao.statusCode, 401)
    const unknown = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'user-chosen-name', idToken: 'x' } })
    t.equal(unknown.statusCode, 400)
  })
  t.equal(moved('gateway_logins_total', { provider: 'google', outcome: 'authenticated' }), 1)
  t.equal(moved('gateway_logins_total', { provider: 'google', outcome: 'signup_required' }), 1)
  t.equal(moved('gateway_logins_total', { provider: 'kakao', outcome: 'refused', error: 'invalid_grant' }), 1)
  t.equal(moved('gateway_logins_total', { provider: 'unknown', outcome: 'refused', error: 'unsupported_provider' }), 1, 'a provider name nobody configured is "unknown"')
  t.notMatch((await scrape()).text, /user-chosen-name/, 'the name the client sent is no label')
})

t.test('provider calls are timed by endpoint, and their errors counted by the provider code', async (t) => {
  const moved = await movedBy(async () => {
    await login('metrics-bob', 'Bob')
    const kakao = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { provider: 'kakao', code: 'never-issued-either', redirectUri: REDIRECT_URI, codeVerifier: 'v'.repeat(43) },
    })
    t.equal(kakao.statusCode, 401)
    // Naver answers an unknown code with HTTP 200 and an OAuth error in the body.
    const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'naver', redirectUri: REDIRECT_URI } })
    const { state } = keep(start.json())
    const naver = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'naver', code: 'never-issued', redirectUri: REDIRECT_URI, state } })
    t.equal(naver.statusCode, 401)
  })
  t.equal(moved('gateway_provider_request_duration_seconds_count', { provider: 'google', endpoint: 'token' }), 1, 'one Google token call')
  t.equal(moved('gateway_logins_total', { provider: 'naver', outcome: 'refused', error: 'invalid_grant' }), 1)
  t.ok(moved('gateway_provider_request_duration_seconds_count', { provider: 'google', endpoint: 'jwks' }) <= 1, 'the key set is fetched at most once')
  t.equal(moved('gateway_provider_errors_total', { provider: 'google' }), 0, 'a good login counts no provider error')
  t.equal(moved('gateway_provider_errors_total', { provider: 'kakao', endpoint: 'token', code: 'KOE320' }), 1, "Kakao's own code, not only its OAuth error")
  t.equal(moved('gateway_provider_errors_total', { provider: 'naver', endpoint: 'token', code: 'invalid_request' }), 1, "Naver's error sent with HTTP 200")
  const { samples } = await scrape()
  t.ok(valueOf(samples, 'gateway_provider_request_duration_seconds_count', { provider: 'kakao', endpoint: 'discovery' }) >= 1, 'Kakao discovery is its own endpoint kind')
  t.ok(valueOf(samples, 'gateway_provider_request_duration_seconds_sum', { provider: 'google', endpoint: 'token' }) > 0, 'with the time it took')
})

t.test("native SDK logins count their providers' key set and profile calls", async (t) => {
  const { kakao } = gateway.emulated!
  const moved = await movedBy(async () => {
    const google = await googleSdkIdToken(gateway, { sub: 'metrics-native', name: 'Nat' })
    const byIdToken = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', idToken: google.idToken, nonce: google.nonce } })
    t.equal(byIdToken.statusCode, 200)
    keep(byIdToken.json())
    const sdk = await kakao.sdkLogin({ id: '9007199254740993', nickname: 'Kim' })
    const byAccessToken = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'kakao', accessToken: sdk.accessToken } })
    t.equal(byAccessToken.statusCode, 200)
    keep(byAccessToken.json())
  })
  t.equal(moved('gateway_logins_total', { provider: 'google', outcome: 'authenticated' }), 1)
  t.equal(moved('gateway_logins_total', { provider: 'kakao', outcome: 'authenticated' }), 1)
  t.equal(moved('gateway_provider_request_duration_seconds_count', { provider: 'kakao', endpoint: 'token_info' }), 1, 'access_token_info first')
  t.equal(moved('gateway_provider_request_duration_seconds_count', { provider: 'kakao', endpoint: 'userinfo' }), 1, 'then /v2/user/me')
  // Code and native logins share one cached key set, fetched by jose through the same helper.
  const { samples } = await scrape()
  t.equal(valueOf(samples, 'gateway_provider_request_duration_seconds_count', { provider: 'google', endpoint: 'jwks' }), 1, "Google's key set was fetched once, and counted")
  t.equal(valueOf(samples, 'gateway_provider_request_duration_seconds_count', { endpoint: 'other' }), 0, 'every call has its endpoint kind')
})

t.test('sessions ended count by cause', async (t) => {
  const forced = await login('metrics-forced', 'Fay')
  const moved = await movedBy(async () => {
    const one = await login('metrics-carl', 'Carl')
    const logout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: one.refreshToken } })
    t.equal(logout.statusCode, 204)

    const everywhere = await login('metrics-dora', 'Dora')
    const all = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: { authorization: `Bearer ${everywhere.accessToken}` } })
    t.equal(all.statusCode, 204)

    // MAX_SESSIONS_PER_USER=2: a third login ends the least recently used session.
    for (let i = 0; i < 3; i++) await login('metrics-eve', 'Eve')

    await gateway.services.forcedLogout.ofUser(forced.user.id, 'client:operations', {})
  })
  t.equal(moved('gateway_session_ends_total', { cause: 'logout' }), 1)
  t.equal(moved('gateway_session_ends_total', { cause: 'logout_all' }), 1)
  t.equal(moved('gateway_session_ends_total', { cause: 'evicted' }), 1)
  t.equal(moved('gateway_session_ends_total', { cause: 'forced' }), 1)
  t.equal(moved('gateway_session_ends_total', { cause: 'reuse' }), 0)
})

t.test('the job queue: jobs waiting by kind, and attempts by outcome', async (t) => {
  const { prisma } = gateway.database
  // Not due for an hour: it waits, as a job whose provider is down does between retries.
  const job = await prisma.job.create({
    data: { kind: 'provider.cleanup', payload: JSON.stringify({ userId: 'metrics-gone', provider: 'kakao', subject: '4200000001' }), runAt: new Date(Date.now() + 3_600_000) },
  })
  t.equal(valueOf((await scrape()).samples, 'gateway_jobs_waiting', { kind: 'provider.cleanup' }), 1, 'the waiting job is counted')
  const moved = await movedBy(async () => {
    await prisma.job.update({ where: { id: job.id }, data: { runAt: new Date(0) } })
    await until('the job to be delivered', async () => (await prisma.job.count()) === 0)
    // The attempt is counted as its outcome is recorded, just after the row goes.
    await until('its outcome to be recorded', async () => (await prisma.auditEvent.count({ where: { target: `job:${job.id}` } })) > 0)
  })
  t.equal(moved('gateway_job_attempts_total', { outcome: 'delivered' }), 1, 'delivered once')
  t.equal(moved('gateway_job_attempts_total', { outcome: 'failed' }), 0)
  t.equal(valueOf((await scrape()).samples, 'gateway_jobs_waiting'), 0, 'nothing waits any more')
})

t.test('a reused refresh token counts as reuse_detected and ends its session as reuse', async (t) => {
  const { refreshToken } = await login('metrics-reuse', 'Rae')
  const moved = await movedBy(async () => {
    const successor = (await refresh(refreshToken)).json().refreshToken as string
    t.equal((await refresh(successor)).statusCode, 200, 'the successor is used')
    t.equal((await refresh(refreshToken)).statusCode, 401, 'the first token again is reuse')
  })
  t.equal(moved('gateway_refreshes_total', { outcome: 'reuse_detected' }), 1)
  t.equal(moved('gateway_session_ends_total', { cause: 'reuse' }), 1)
})

t.test(
  'refreshes count by outcome: rotated, grace, invalid, limited, unavailable',
  async (t) => {
    const { refreshToken } = await login('metrics-rotation', 'Rita')
    const moved = await movedBy(async () => {
      const successor = (await refresh(refreshToken)).json().refreshToken as string
      t.equal((await refresh(refreshToken)).json().refreshToken, successor, 'a retry within the grace window gets the same successor')
      t.equal((await refresh('not-a-refresh-token')).statusCode, 401)
      let token = successor
      for (let i = 0; i < 3; i++) token = (await refresh(token)).json().refreshToken
      t.equal((await refresh(token)).statusCode, 429, 'RATE_LIMIT_REFRESH=5: the sixth in a minute')
      await gateway.testRedis.stop()
      try {
        t.equal((await refresh(token)).statusCode, 503)
      } finally {
        await gateway.testRedis.start()
        await redisReconnected(gateway)
      }
    })
    t.equal(moved('gateway_refreshes_total', { outcome: 'rotated' }), 4)
    t.equal(moved('gateway_refreshes_total', { outcome: 'grace' }), 1)
    t.equal(moved('gateway_refreshes_total', { outcome: 'invalid' }), 1)
    t.equal(moved('gateway_refreshes_total', { outcome: 'limited' }), 1)
    t.equal(moved('gateway_refreshes_total', { outcome: 'unavailable' }), 1)
  },
)

t.test('429s count by the budget that refused them', async (t) => {
  const moved = await movedBy(async () => {
    // RATE_LIMIT_LOGIN=30 per address and route: the 31st is refused before anything runs.
    const authorize = () => app.inject({ method: 'GET', url: '/auth/authorize/google?returnTo=https%3A%2F%2Fnot-allowed.example%2F' })
    for (let i = 0; i < 30; i++) t.equal((await authorize()).statusCode, 400)
    t.equal((await authorize()).statusCode, 429)

    // RATE_LIMIT_REFRESH=5 per session: the sixth refresh of one session in a minute.
    let { refreshToken } = await login('metrics-busy', 'Bea')
    for (let i = 0; i < 5; i++) refreshToken = (await refresh(refreshToken)).json().refreshToken
    t.equal((await refresh(refreshToken)).statusCode, 429)
  })
  t.equal(moved('gateway_http_refusals_total', { status: '429', cause: 'login' }), 1)
  t.equal(moved('gateway_http_refusals_total', { status: '429', cause: 'refresh' }), 1)
  t.equal(moved('gateway_http_requests_total', { route: '/auth/authorize/:provider', status: '429' }), 1, 'and under the route pattern')
})

t.test('503s count as storage refusals while Redis is down', async (t) => {
  const { refreshToken } = await login('metrics-outage', 'Otto')
  const moved = await movedBy(async () => {
    await gateway.testRedis.stop()
    try {
      t.equal((await refresh(refreshToken)).statusCode, 503)
      const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
      t.equal(start.statusCode, 503)
    } finally {
      await gateway.testRedis.start()
      await redisReconnected(gateway)
    }
  })
  t.equal(moved('gateway_http_refusals_total', { status: '503', cause: 'storage' }), 2)
  t.equal(moved('gateway_http_requests_total', { method: 'POST', route: '/auth/token', status: '503' }), 1)
})

t.test('no label carries a user id, a token, a URL or a query string', async (t) => {
  const { user, accessToken } = await login('metrics-private', 'Pia')
  const moved = await movedBy(async () => {
    await app.inject({ method: 'GET', url: '/health/live?code=query-secret-code&state=query-secret-state' })
    await app.inject({ method: 'GET', url: `/users/${user.id}/profile?token=${accessToken}` })
    await app.inject({ method: 'DELETE', url: `/auth/sessions/${user.id}`, headers: { authorization: `Bearer ${accessToken}` } })
  })
  t.equal(moved('gateway_http_requests_total', { method: 'GET', route: '/health/live', status: '200' }), 1, 'a route is its pattern')
  t.equal(moved('gateway_http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }), 1, 'a URL no route matches is "unmatched"')
  t.equal(moved('gateway_http_requests_total', { method: 'DELETE', route: '/auth/sessions/:sessionId' }), 1, 'path parameters stay placeholders')

  const { text, samples } = await scrape()
  for (const secret of [...secrets, 'query-secret-code', 'query-secret-state']) {
    if (text.includes(secret)) t.fail(`the scrape contains ${secret.slice(0, 12)}…`)
  }
  t.ok(secrets.size > 20, `checked ${secrets.size} ids and tokens`)
  const values = samples.flatMap((sample) => Object.values(sample.labels))
  t.notOk(values.some((value) => value.includes('?')), 'no query string')
  t.notOk(values.some((value) => /^https?:/.test(value)), 'no URL')
  t.notOk(values.some((value) => value.length > 64), 'no long values (tokens)')
})
