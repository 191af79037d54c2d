// The demo page (DEMO_PAGE=true; the development start turns it on): a tiny web app that
// uses the gateway exactly as a product's web client would, served same-origin.

import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'

const FILES = {
  '/demo': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/demo/demo.js': { file: 'demo.js', type: 'text/javascript; charset=utf-8' },
  '/demo/demo.css': { file: 'demo.css', type: 'text/css; charset=utf-8' },
} as const

export async function demoRoutes(app: FastifyInstance): Promise<void> {
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = await readFile(new URL(`../demo/${file}`, import.meta.url))
    app.get(path, async (_request, reply) =>
      reply
        .header('content-type', type)
        .header('content-security-policy', "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(body),
    )
  }
}
