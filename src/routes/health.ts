import type { FastifyInstance } from 'fastify'
import type { GatewayServices } from '../services.js'
import { errorBody, responses, SHUTTING_DOWN } from './shapes.js'

const CHECK_TIMEOUT_MS = 2000

/** Each dependency's state, by name (redis, database). */
const checks = { type: 'object', additionalProperties: { type: 'string', enum: ['ok', 'unavailable'] } } as const

const TAGS = ['health']
const MALFORMED = { 400: 'invalid_request: the request is malformed' } as const

const live = {
  summary: 'Liveness: the process answers',
  tags: TAGS,
  response: responses({ 200: { description: 'alive', type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } } }, { ...MALFORMED, ...SHUTTING_DOWN }),
} as const

const ready = {
  summary: 'Readiness: both stores can do their work',
  tags: TAGS,
  response: responses(
    {
      200: { description: 'ready', type: 'object', required: ['status', 'checks'], properties: { status: { type: 'string', enum: ['ok'] }, checks } },
      503: {
        description: 'unavailable: a storage dependency is unavailable (checks says which), or the gateway is shutting down',
        ...errorBody,
        properties: { ...errorBody.properties, checks },
      },
    },
    MALFORMED,
  ),
} as const

export async function healthRoutes(app: FastifyInstance, { readiness }: Pick<GatewayServices, 'readiness'>): Promise<void> {

  app.get('/health/live', { schema: live }, async () => ({ status: 'ok' }))

  // Ready only when both stores can do their work (for Redis: take a write, see the checks
  // in gateway.ts): a load balancer stops sending logins meanwhile.
  app.get('/health/ready', { schema: ready }, async (_request, reply) => {
    const entries = await Promise.all(
      Object.entries(readiness).map(async ([name, check]) => [name, await passes(check)] as const),
    )
    const checks = Object.fromEntries(entries.map(([name, ok]) => [name, ok ? 'ok' : 'unavailable']))
    if (entries.every(([, ok]) => ok)) return { status: 'ok', checks }
    return reply.code(503).send({ error: 'unavailable', message: 'a storage dependency is unavailable', checks })
  })
}

async function passes(check: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS)
  })
  try {
    await Promise.race([check(), timeout])
    return true
  } catch {
    return false
  } finally {
    clearTimeout(timer)
  }
}
