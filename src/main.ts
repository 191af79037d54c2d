// `npm start`: read the environment, start the gateway, stop cleanly on SIGTERM/SIGINT.

import { ConfigError } from './common/errors.js'
import { loadConfig } from './config.js'
import { createGateway } from './gateway.js'

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    for (const problem of error.problems) console.error(`configuration: ${problem}`)
    process.exit(1)
  }
  const gateway = await createGateway(config)
  const stop = async (signal: string) => {
    gateway.app.log.info(`${signal} received, shutting down`)
    await gateway.close()
    process.exit(0)
  }
  process.once('SIGTERM', () => void stop('SIGTERM'))
  process.once('SIGINT', () => void stop('SIGINT'))
  await gateway.app.listen({ port: config.port, host: config.host })
  // Its own listener on the same host: the public port never answers /metrics.
  if (gateway.metricsApp) await gateway.metricsApp.listen({ port: config.metricsPort, host: config.host })
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    for (const problem of error.problems) console.error(`configuration: ${problem}`)
  } else {
    console.error('the gateway could not start:', error instanceof Error ? error.message : error)
  }
  process.exit(1)
})
