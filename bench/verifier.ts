// Verifications per second of the verifier plugin (verifier/), with revocation checking
// off and on (one Redis EXISTS per request), against a bare fastify route doing one
// jose.jwtVerify with a local key set, in the same run. Real gateway (embedded database,
// real redis-server), real ES256 access tokens of real sessions, all on 127.0.0.1.
//
//   node --import tsx bench/verifier.ts
//   BENCH_SECONDS=8  BENCH_WARMUP_SECONDS=2  BENCH_CONNECTIONS=64   (about 35 s in all)
//
// The load generator is bench/load-generator.ts, which POSTs `{ "refreshToken": <token> }`.
// Every target therefore takes the token from that body into the Authorization header in
// a preValidation hook (the same cost for all three) and then verifies it as a resource
// server would. Exits non-zero when any request failed: a benchmark of 401s is meaningless.

import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import * as jose from 'jose'
import { startLocalRedis } from '../src/storage/local-redis.js'
import { accessTokenVerifier, type VerifierOptions } from '../verifier/index.js'
import {
  answered,
  columns,
  hasFailures,
  loadJob,
  measure,
  onCleanUp,
  printSetup,
  printTable,
  readLoadSettings,
  redisCpuSeconds,
  runBench,
  runsOf,
  serve,
  startGateway,
  startSessions,
  tempDir,
  type Measurement,
} from './harness.js'

const SETTINGS = readLoadSettings(8)

async function main(): Promise<number> {
  const dataDir = await tempDir('verifier-bench-')
  const localRedis = await startLocalRedis(dataDir)
  onCleanUp(() => localRedis.stop())

  const { gateway, config } = await startGateway(dataDir, localRedis.url)
  const { sessionTokens, keys } = gateway.services

  // One real session and access token per connection.
  const tokens = (await startSessions(sessionTokens, SETTINGS.connections)).map((session) => session.accessToken)

  // The resource server's own client of the gateway's Redis, configured as the plugin advises.
  const redis = new Redis(localRedis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, enableAutoPipelining: true, lazyConnect: true })
  await redis.connect()
  onCleanUp(() => redis.disconnect())

  const issuer = config.publicUrl
  const audience = config.tokenAudience
  const bare = await serve(bareJwtVerify(jose.createLocalJWKSet(keys.jwks), issuer, audience))
  const off = await serve(await protectedApp({ issuer, audience }))
  const on = await serve(await protectedApp({ issuer, audience, revocation: { redis } }))

  printSetup(SETTINGS)
  const job = (url: string) => loadJob(SETTINGS, url, '/orders', tokens, false)
  const options = { redisCpuSeconds: () => redisCpuSeconds(redis) }
  const targets: Measurement[] = []
  targets.push(await measure('bare jwtVerify', job(bare), options))
  targets.push(await measure('verifier, revocation off', job(off), options))
  await redis.config('RESETSTAT')
  targets.push(await measure('verifier, revocation on', job(on), options))
  const exists = Number(/^cmdstat_exists:calls=(\d+)/m.exec(await redis.info('commandstats'))?.[1] ?? 0)

  printTable(targets, [columns.serverCpuPerRequest, columns.otherProcesses, columns.steal])
  const [base, withoutRevocation, withRevocation] = targets as [Measurement, Measurement, Measurement]
  const rps = (m: Measurement) => m.report.measured.requestsPerSecond
  console.log()
  console.log(`verifier (revocation off) / bare jwtVerify: ${(rps(withoutRevocation) / rps(base)).toFixed(3)} of the req/s, ${(withoutRevocation.cpuPerRequest / base.cpuPerRequest).toFixed(2)}x the CPU per request`)
  console.log(`verifier (revocation on)  / bare jwtVerify: ${(rps(withRevocation) / rps(base)).toFixed(3)} of the req/s, ${(withRevocation.cpuPerRequest / base.cpuPerRequest).toFixed(2)}x the CPU per request`)
  console.log(`revocation on / off:                        ${(rps(withRevocation) / rps(withoutRevocation)).toFixed(3)} of the req/s`)
  const noisiest = Math.max(...targets.map(({ noise }) => (noise?.others ?? 0) + (noise?.steal ?? 0)))
  if (noisiest > 0.1) {
    console.log(
      `note: up to ${(noisiest * 100).toFixed(0)} % of a CPU went to other processes or the hypervisor during a measured run; ` +
        'req/s figures are noisy, CPU per request is steadier: run again on a quieter machine',
    )
  }

  let ok = true
  for (const { name, report } of targets) {
    if (hasFailures(report)) {
      ok = false
      console.error(`\nFAILED: ${name} had failed requests: ${runsOf(report).map((run) => JSON.stringify(run.statusCodes)).join(' ')}`)
      for (const sample of report.failureSamples) console.error(`  ${sample}`)
    }
  }
  // Proof that revocation on really asked Redis once per request answered.
  const revocationAnswered = answered(withRevocation.report)
  console.log(`redis EXISTS calls during revocation on: ${exists} for ${revocationAnswered} 2xx answers`)
  if (exists < revocationAnswered) {
    ok = false
    console.error('FAILED: fewer EXISTS calls than answers: revocation was not checked on every request')
  }
  return ok ? 0 : 1
}

/** The baseline: what any resource server must do at least, one jwtVerify with the same checks. */
function bareJwtVerify(keySet: jose.JWTVerifyGetKey, issuer: string, audience: string): FastifyInstance {
  const app = Fastify({ logger: false })
  app.addHook('preValidation', bearerFromBody)
  app.post('/orders', async (request, reply) => {
    const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    try {
      const { payload } = await jose.jwtVerify(token ?? '', keySet, { issuer, audience, algorithms: ['ES256', 'EdDSA'], typ: 'at+jwt' })
      return { sub: payload.sub }
    } catch {
      return reply.code(401).send({ error: 'invalid_token' })
    }
  })
  return app
}

async function protectedApp(options: VerifierOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.addHook('preValidation', bearerFromBody)
  await app.register(accessTokenVerifier, options)
  app.post('/orders', { preHandler: app.authenticate }, async (request) => ({ sub: request.accessToken!.sub }))
  return app
}

/** bench/load-generator.ts sends the token as `{ refreshToken }`; put it where a client would. */
async function bearerFromBody(request: FastifyRequest): Promise<void> {
  request.headers.authorization = `Bearer ${(request.body as { refreshToken: string }).refreshToken}`
}

await runBench(main)
