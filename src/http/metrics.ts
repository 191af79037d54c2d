// Metrics over HTTP. On the public app, one onResponse hook counts every answer by its route
// pattern (`/auth/callback/:provider`, never the URL: no query string, code or id reaches a
// label). The series themselves are served by a listener of their own on METRICS_PORT, so the
// public port never answers /metrics and a scrape never competes with the public routes'
// rate limits or CORS.

import Fastify, { type FastifyInstance } from 'fastify'

export interface FinishedRequest {
  method: string
  /** The route pattern; undefined when no route matched (404s, URLs the router refused). */
  route: string | undefined
  status: number
}

/** Hears of every answered request (the metrics). */
export interface RequestObserver {
  requestFinished(request: FinishedRequest): void
}

export function registerRequestMetrics(app: FastifyInstance, observer: RequestObserver): void {
  app.addHook('onResponse', (request, reply, done) => {
    observer.requestFinished({ method: request.method, route: request.routeOptions.url, status: reply.statusCode })
    done()
  })
}

/** What the metrics listener serves: the text of the series and its media type. */
export interface MetricsSource {
  readonly contentType: string
  render(): Promise<string>
}

/** The METRICS_PORT listener: `GET /metrics` in Prometheus' text format, and nothing else. */
export function buildMetricsApp(source: MetricsSource): FastifyInstance {
  const app = Fastify({ logger: false, return503OnClosing: true })
  app.get('/metrics', async (_request, reply) => reply.header('cache-control', 'no-store').type(source.contentType).send(await source.render()))
  return app
}
