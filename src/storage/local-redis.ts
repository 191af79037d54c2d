// Development only: when REDIS_URL is unset the gateway runs its own redis-server, with
// its data under DATA_DIR so sessions survive a restart. Production requires REDIS_URL.

import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { freeLoopbackPort, waitForLoopbackPort } from '../common/loopback.js'

export interface LocalRedis {
  url: string
  stop(): void
}

export async function startLocalRedis(dataDir: string): Promise<LocalRedis> {
  const dir = resolve(dataDir, 'redis')
  await mkdir(dir, { recursive: true })
  const port = await freeLoopbackPort()
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error('REDIS_URL is unset and redis-server is not installed: run `apt-get install redis-server` or set REDIS_URL')
          : error,
      ),
    )
    child.once('exit', (code) => reject(new Error(`the local redis-server exited with code ${code}`)))
  })
  const stop = () => child.kill('SIGTERM')
  process.once('exit', stop)
  await Promise.race([failed, waitForLoopbackPort(port, 'the local redis-server')])
  failed.catch(() => {})
  return { url: `redis://127.0.0.1:${port}`, stop }
}
