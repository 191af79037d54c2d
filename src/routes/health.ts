import type { FastifyInstance } from 'fastify'

const CHECK_TIMEOUT_MS = 2000

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const { readiness } = app.gateway

  app.get('/health/live', async () => ({ status: 'ok' }))

  // Ready only when both stores can do their work (for Redis: take a write, see the checks
  // in gateway.ts): a load balancer stops sending logins meanwhile.
  app.get('/health/ready', async (_request, reply) => {
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
