// One server of `npm run bench:instructions`, run under valgrind by bench/instructions.ts:
// the gateway (POST /auth/token) or the baseline (POST /token, sign only). It prints one
// JSON line, { url, path, tokens }, once it listens, and runs until it is killed.
//
//   node --import tsx bench/instruction-target.ts <gateway|baseline> <redis url> <data dir> <connections>

import { buildBaseline, serve, startGateway, startSessions } from './harness.js'

const [target, redisUrl, dataDir, connections] = process.argv.slice(2)
// No job loops: their polling would count instructions that depend on how long the run takes.
// valgrind runs this process about 50 times slower than usual: its Redis calls must not time out.
const { gateway, url } = await startGateway(dataDir!, redisUrl!, {
  RATE_LIMIT_TOKEN: '1000000',
  RATE_LIMIT_REFRESH: '1000000',
  JOB_CONCURRENCY: '0',
  REDIS_COMMAND_TIMEOUT_MS: '120000',
})
const sessions = await startSessions(gateway.services.sessionTokens, Number(connections))
const tokens = sessions.map((session) => session.refreshToken)
if (target === 'gateway') {
  console.log(JSON.stringify({ url, path: '/auth/token', tokens }))
} else {
  // The gateway stays idle in this process; only its keys and token class are used.
  const baselineUrl = await serve(buildBaseline(gateway.services.accessTokens))
  console.log(JSON.stringify({ url: baselineUrl, path: '/token', tokens }))
}
