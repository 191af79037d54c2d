// The HTTP application: fastify with strict JSON-schema validation, redacted logs, CORS
// for the allowed web origins, and one plugin per group of routes. Services arrive ready
// made (see gateway.ts), so tests can build the same app over real servers.

import cookie from '@fastify/cookie'
import cors from '@fastify/cors'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { GatewayServices } from './services.js'
import { applyConnectionLimits } from './http/connection-limits.js'
import { clientErrorHandler, frameworkErrors, refuseRequestsWithoutHost, registerErrorHandling } from './http/errors.js'
import { registerStrictJsonBodies } from './http/json-body.js'
import { registerRequestMetrics } from './http/metrics.js'
import { registerRateLimits } from './http/rate-limits.js'
import { adminRoutes } from './routes/admin.js'
import { browserSessionRoutes } from './routes/browser-session.js'
import { demoRoutes } from './routes/demo.js'
import { discoveryRoutes } from './routes/discovery.js'
import { healthRoutes } from './routes/health.js'
import { loginRoutes } from './routes/login.js'
import { registerOpenApi } from './routes/openapi.js'
import { meRoutes } from './routes/me.js'
import { identityRoutes } from './routes/identities.js'
import { providerCallbackRoutes } from './routes/provider-callbacks.js'
import { oauthTokenRoutes } from './routes/oauth-token.js'
import { redirectFlowRoutes } from './routes/redirect-flow.js'
import { sessionRoutes } from './routes/sessions.js'
import { signupRoutes } from './routes/signup.js'
import { tokenRoutes } from './routes/tokens.js'

/** Header and body members that must never reach a log line. */
const REDACTED = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.refreshToken',
  '*.accessToken',
  '*.signupToken',
  '*.code',
  '*.codeVerifier',
  '*.state',
  '*.idToken',
  '*.client_secret',
  '*.access_token',
]

/** A hop count trusts that many proxies in front of us (what proxy-addr does with a number). */
function trustedProxies(setting: GatewayServices['config']['trustProxy']) {
  return typeof setting === 'number' ? (_address: string, hop: number) => hop < setting : setting
}

export async function buildApp(services: GatewayServices, logger: FastifyServerOptions['logger'] = true): Promise<FastifyInstance> {
  const app = Fastify({
    logger:
      logger === true || logger === undefined
        ? {
            level: services.config.logLevel,
            redact: { paths: REDACTED, censor: '[redacted]' },
            // Log the path only: a query string may carry a code or a state.
            serializers: { req: (request) => ({ method: request.method, path: request.url.split('?')[0], remoteAddress: request.ip }) },
          }
        : logger,
    bodyLimit: 16 * 1024,
    // Unknown fields are rejected, not silently removed; types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    return503OnClosing: true,
    // What the router and Node's HTTP parser refuse gets the contract's { error, message } too.
    frameworkErrors,
    clientErrorHandler,
    trustProxy: trustedProxies(services.config.trustProxy),
    // A request's headers and body must arrive within REQUEST_TIMEOUT, however slowly they
    // trickle. Node enforces this only every connectionsCheckingInterval (30 s by default), so
    // check every second. connectionTimeout (no byte either way) bounds a stuck handler or a
    // client that never reads the answer. Idle keep-alive lasts past the 60 s a load balancer
    // keeps an idle upstream connection, so the gateway never closes one the balancer reuses.
    requestTimeout: services.config.requestTimeout * 1000,
    http: {
      requestTimeout: services.config.requestTimeout * 1000,
      headersTimeout: services.config.requestTimeout * 1000,
      connectionsCheckingInterval: 1000,
      // Answered by refuseRequestsWithoutHost instead, with a body.
      requireHostHeader: false,
    },
    connectionTimeout: 60_000,
    keepAliveTimeout: 72_000,
  })
  applyConnectionLimits(app.server, { perAddress: services.config.maxConnectionsPerIp })
  registerErrorHandling(app, services.metrics)
  if (services.metrics) registerRequestMetrics(app, services.metrics)
  refuseRequestsWithoutHost(app)
  // Every body is JSON. Without this, a text/plain body (what a cross-site form sends)
  // would reach the schema instead of being refused with 415.
  app.removeContentTypeParser('text/plain')
  // Repeated keys and U+0000 in a JSON body are refused (see json-body.ts).
  registerStrictJsonBodies(app)

  await app.register(cookie)
  await registerRateLimits(app, services.redis)
  await registerOpenApi(app, services.config.publicUrl)
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && services.browser.isAllowedOrigin(origin)),
    credentials: true,
    methods: ['GET', 'POST', 'DELETE'],
    // A web app on another origin reads why a token was refused and when to retry a 429 or 503.
    exposedHeaders: ['WWW-Authenticate', 'Retry-After'],
  })

  // Each plugin gets the services it names, and nothing else.
  const { config, login, signup, browser, providers, keys, accessTokens, sessions, sessionTokens, users, links, accountDeletion, revocations } = services
  await app.register(loginRoutes, { login, browser, config, providers })
  await app.register(signupRoutes, { signup, browser, config })
  await app.register(tokenRoutes, { browser, sessionTokens, sessions, accessTokens, config })
  await app.register(browserSessionRoutes, { browser })
  await app.register(meRoutes, { users, accessTokens, sessions, accountDeletion, browser })
  await app.register(identityRoutes, { login, links, browser, accessTokens, sessions, config })
  await app.register(providerCallbackRoutes, { providers, revocations })
  await app.register(redirectFlowRoutes, { login, browser, config, providers })
  await app.register(sessionRoutes, { sessions, accessTokens, browser })
  await app.register(oauthTokenRoutes, { clientCredentials: services.clientCredentials, introspection: services.introspection, config })
  await app.register(adminRoutes, {
    accessTokens,
    clients: services.clients,
    audit: services.audit,
    forcedLogout: services.forcedLogout,
    administration: services.administration,
    accountDeletion,
    config,
  })
  await app.register(discoveryRoutes, { config, keys, providers })
  await app.register(healthRoutes, { readiness: services.readiness })
  if (config.demoPage) await app.register(demoRoutes, { config })
  return app
}
