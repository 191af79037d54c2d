// The demo page (DEMO_PAGE=true; the development start turns it on): a tiny web app that
// uses the gateway exactly as a product's web client would, served same-origin.

import { readFile } from 'node:fs/promises'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { GatewayServices } from '../services.js'
import { ConfigError } from '../common/errors.js'
import { isLoopbackUrl } from '../common/loopback.js'

const FILES = {
  '/demo': { file: '../demo/index.html', type: 'text/html; charset=utf-8' },
  '/demo/demo.js': { file: '../demo/demo.js', type: 'text/javascript; charset=utf-8' },
  // The client package, compiled by scripts/demo-client.mjs (npm run build, dev and test).
  '/demo/client.js': { file: '../generated/demo-client/index.js', type: 'text/javascript; charset=utf-8' },
  '/demo/demo.css': { file: '../demo/demo.css', type: 'text/css; charset=utf-8' },
  '/demo/favicon.svg': { file: '../demo/favicon.svg', type: 'image/svg+xml' },
} as const

export async function demoRoutes(app: FastifyInstance, { config }: Pick<GatewayServices, 'config'>): Promise<void> {
  const publicUrl = new URL(config.publicUrl)

  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = await readFile(new URL(file, import.meta.url)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error
      throw new ConfigError([`DEMO_PAGE: src/${file.slice(3)} is missing; \`node scripts/demo-client.mjs\` compiles the demo's client (npm run build, dev and test do)`])
    })
    app.get(path, { schema: { hide: true } }, async (request, reply) => {
      // The provider sends the browser back to PUBLIC_URL, and the login's cookies live on
      // that host: on the other loopback spelling (the start log prints 127.0.0.1, PUBLIC_URL
      // says localhost) the page would be refused as returnTo and lose its session.
      if (path === '/demo' && !config.production && isOtherLoopbackHost(request, publicUrl)) {
        return reply.redirect(`${config.publicUrl}${request.url}`, 302)
      }
      return reply
        .header('content-type', type)
        .header('content-security-policy', "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(body)
    })
  }
}

/** A request for a loopback host other than the public URL's, itself on loopback. */
function isOtherLoopbackHost(request: FastifyRequest, publicUrl: URL): boolean {
  if (!isLoopbackUrl(publicUrl) || request.host === publicUrl.host) return false
  try {
    return isLoopbackUrl(new URL(`${publicUrl.protocol}//${request.host}`))
  } catch {
    return false
  }
}
