// What the client's tests share: the repository's test gateway (real Redis, PGlite and the
// emulated providers on loopback), with a tally of the refresh requests it answered.

import type { ServerResponse } from 'node:http'
import { startTestGateway, type TestGateway } from '../../test/support/gateway.js'

export interface CountedGateway {
  gateway: TestGateway
  /** Every `POST /auth/token` the gateway answered, by status, in order. */
  refreshes: number[]
  /** Called with the status of every `POST /auth/token` answer as it goes out. */
  onRefresh?: (status: number) => void
  /** Stops Redis (its data saved): every refresh is a 503 until `redisBack()` starts it again. */
  redisDown(): Promise<void>
  redisBack(): Promise<void>
}

/** A gateway whose access tokens live 30 s (the least ACCESS_TOKEN_TTL allows), on a localhost port. */
export async function countedGateway(env: Record<string, string> = {}): Promise<CountedGateway> {
  const gateway = await startTestGateway({ database: 'pglite', listen: true, env: { ACCESS_TOKEN_TTL: '30', ...env } })
  const counted: CountedGateway = {
    gateway,
    refreshes: [],
    async redisDown() {
      // The test server keeps nothing on disk by itself: save, so the sessions come back with it.
      await gateway.redis.call('SAVE')
      await gateway.testRedis.stop()
    },
    async redisBack() {
      await gateway.testRedis.start()
      if (gateway.redis.status !== 'ready') await new Promise((resolve) => gateway.redis.once('ready', resolve))
    },
  }
  gateway.app.server.on('request', (request, response: ServerResponse) => {
    if (request.method !== 'POST' || request.url !== '/auth/token') return
    response.on('finish', () => {
      counted.refreshes.push(response.statusCode)
      counted.onRefresh?.(response.statusCode)
    })
  })
  return counted
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
