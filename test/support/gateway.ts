// A gateway for tests, built exactly as production builds it (createGateway), over a real
// redis-server, a real database (PostgreSQL or PGlite) and the Google emulator on loopback
// (Apple's too, on request; all four providers' for a gateway a real browser drives).

import * as jose from 'jose'
import * as oidc from 'openid-client'
import type { FastifyServerOptions } from 'fastify'
import { loadConfig, type Config } from '../../src/config.js'
import { createGateway, type Gateway } from '../../src/gateway.js'
import { reserveLoopbackPort } from '../../src/common/loopback.js'
import { startGoogleEmulator, type EmulatedAccount, type GoogleEmulator } from '../../emulators/google.js'
import type { AppleEmulator } from '../../emulators/apple.js'
import { startEmulatedApple, startEmulatedProviders, type EmulatedProviders } from '../../emulators/providers.js'
import { createTestDatabase } from './postgres.js'
import { startRedis, type TestRedis } from './redis.js'

export const APP_ORIGIN = 'https://app.example'
export const REDIRECT_URI = 'https://app.example/callback'
export const PUBLIC_URL = 'https://gateway.example'
export const GOOGLE_CLIENT = { clientId: 'gateway-test-client', clientSecret: 'gateway-test-secret' }

/** The gateway as production builds it, with the Google emulator it logs users in at. */
export interface GatewayUnderTest extends Gateway {
  config: Config
  google: GoogleEmulator
  /** All four providers' emulators, for a gateway started with `listen`. */
  emulated?: EmulatedProviders
  /** The Apple emulator, for a gateway started with `listen` or `apple`. */
  apple?: AppleEmulator
  /** Plays a user at Google for an authorization URL; returns the code the app would receive. */
  codeFor(authorizationUrl: string, account: EmulatedAccount): Promise<string>
}

/** A gateway over a redis-server of its own. */
export interface TestGateway extends GatewayUnderTest {
  testRedis: TestRedis
}

export interface TestGatewayOptions {
  database?: 'postgresql' | 'pglite'
  /** A postgresql:// URL to use instead of a fresh database. */
  databaseUrl?: string
  env?: Record<string, string>
  /** Listen on a free localhost port (PUBLIC_URL http://localhost:<port>) for a real browser. */
  listen?: boolean
  /** Sign in with Apple too, at the Apple emulator (which `listen` starts anyway). */
  apple?: boolean
  /**
   * Redis settings (REDIS_CLUSTER_NODES, REDIS_SENTINELS…) of servers the test runs and
   * shares, instead of a redis-server of the gateway's own.
   */
  redis?: Record<string, string>
  /** Where the gateway logs (fastify's `logger` option); by default it logs nothing. */
  logger?: FastifyServerOptions['logger']
}

export async function startTestGateway(options: TestGatewayOptions & { redis: Record<string, string> }): Promise<GatewayUnderTest>
export async function startTestGateway(options?: TestGatewayOptions): Promise<TestGateway>
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<GatewayUnderTest & { testRedis?: TestRedis }> {
  // Held until the gateway listens: PUBLIC_URL names the port, and a loaded machine can spend seconds starting the database.
  const reserved = options.listen ? await reserveLoopbackPort() : undefined
  const port = reserved?.port
  const publicUrl = port ? `http://localhost:${port}` : PUBLIC_URL
  // A gateway for a real browser gets all four providers, exactly as `npm run dev` has them.
  const emulated = options.listen ? await startEmulatedProviders({ publicUrl, redirectUris: [REDIRECT_URI] }) : undefined
  const apple = options.apple && !emulated ? await startEmulatedApple({ redirectUris: [REDIRECT_URI, `${publicUrl}/auth/callback/apple`] }) : undefined
  const [testRedis, google, databaseUrl, signingKeys] = await Promise.all([
    options.redis ? undefined : startRedis(),
    emulated?.google ?? startGoogleEmulator({ ...GOOGLE_CLIENT, redirectUris: [REDIRECT_URI, `${publicUrl}/auth/callback/google`] }),
    options.databaseUrl ?? (options.database === 'pglite' ? undefined : createTestDatabase().then((db) => db.url)),
    testSigningKeys(),
  ])
  const config = loadConfig({
    NODE_ENV: 'test',
    PUBLIC_URL: publicUrl,
    ...(port ? { PORT: String(port), DEMO_PAGE: 'true' } : {}),
    ...(options.redis ?? { REDIS_URL: testRedis!.url }),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: 'memory://' }),
    SIGNING_KEYS: signingKeys,
    GOOGLE_CLIENT_ID: GOOGLE_CLIENT.clientId,
    GOOGLE_CLIENT_SECRET: GOOGLE_CLIENT.clientSecret,
    GOOGLE_ISSUER: google.issuer,
    ALLOWED_REDIRECT_URIS: REDIRECT_URI,
    WEB_ORIGINS: APP_ORIGIN,
    LOG_LEVEL: 'silent',
    // Tests send far more than a person would; test/rate-limits.test.ts sets real limits.
    RATE_LIMIT_LOGIN: '1000000',
    RATE_LIMIT_TOKEN: '1000000',
    RATE_LIMIT_REFRESH: '1000000',
    ...emulated?.env,
    ...apple?.env,
    ...options.env,
  })
  const gateway = await createGateway(config, options.logger ?? false)
  if (reserved) {
    await reserved.release()
    await gateway.app.listen({ port: reserved.port, host: '127.0.0.1' })
  }
  // METRICS_PORT in env: its listener starts as main.ts starts it.
  if (gateway.metricsApp) await gateway.metricsApp.listen({ port: config.metricsPort, host: '127.0.0.1' })
  return {
    ...gateway,
    config,
    testRedis,
    google,
    async codeFor(authorizationUrl, account) {
      const redirect = await google.authorize(authorizationUrl, account)
      const code = redirect.searchParams.get('code')
      if (!code) throw new Error(`the emulator did not return a code: ${redirect.href}`)
      return code
    },
    emulated,
    apple: emulated?.apple ?? apple?.emulator,
    async close() {
      await gateway.close()
      await Promise.all([testRedis?.stop(), emulated ? emulated.stop() : google.stop(), apple?.emulator.stop()])
    },
  }
}

async function testSigningKeys(): Promise<string> {
  const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true })
  const jwk = await jose.exportJWK(privateKey)
  return JSON.stringify({ keys: [{ ...jwk, kid: 'test-key-1', alg: 'ES256' }] })
}

/** Runs login/start, plays the user at Google, and posts the code back: the whole browserless login. */
export async function loginWithGoogle(
  gateway: GatewayUnderTest,
  account: EmulatedAccount,
  headers: Record<string, string> = {},
) {
  // As a client would, a 503 here (Redis slow on a machine loaded by the parallel test files)
  // is retried: nothing is spent yet. The login itself is answered as it is.
  let start
  for (let attempt = 1; ; attempt++) {
    start = await gateway.app.inject({
      method: 'POST',
      url: '/auth/login/start',
      headers,
      payload: { provider: 'google', redirectUri: REDIRECT_URI },
    })
    if (start.statusCode !== 503 || attempt === 4) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  if (start.statusCode !== 200) throw new Error(`login/start failed: ${start.statusCode} ${start.body}`)
  const { authorizationUrl, state } = start.json()
  const code = await gateway.codeFor(authorizationUrl, account)
  return gateway.app.inject({
    method: 'POST',
    url: '/auth/login',
    headers,
    payload: { provider: 'google', code, redirectUri: REDIRECT_URI, state },
  })
}

/**
 * What a native app does on its own: PKCE, nonce and the authorization at Google, without
 * the gateway's /auth/login/start. Returns what the app then posts to /auth/login.
 */
export async function nativeAppAuthorization(gateway: GatewayUnderTest, account: EmulatedAccount) {
  const configuration = await googleClientConfiguration(gateway)
  const codeVerifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const authorizationUrl = oidc.buildAuthorizationUrl(configuration, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state: oidc.randomState(),
    nonce,
  })
  const code = await gateway.codeFor(authorizationUrl.href, account)
  return { provider: 'google', code, codeVerifier, nonce, redirectUri: REDIRECT_URI }
}

/** An openid-client configuration for the emulated Google app, as any of its clients would have. */
export function googleClientConfiguration(gateway: GatewayUnderTest) {
  const { clientId, clientSecret } = gateway.config.providers.google!.settings as { clientId: string; clientSecret: string }
  return oidc.discovery(new URL(gateway.google.issuer), clientId, clientSecret, undefined, {
    execute: [oidc.allowInsecureRequests],
  })
}

/** What Google's SDK hands a native app: an ID token issued to the app's own client id, and its nonce. */
export async function googleSdkIdToken(gateway: GatewayUnderTest, account: EmulatedAccount) {
  const { code, codeVerifier, nonce } = await nativeAppAuthorization(gateway, account)
  const callback = new URL(REDIRECT_URI)
  callback.searchParams.set('code', code)
  const tokens = await oidc.authorizationCodeGrant(await googleClientConfiguration(gateway), callback, {
    pkceCodeVerifier: codeVerifier,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  return { idToken: tokens.id_token!, accessToken: tokens.access_token, nonce }
}

/** Resolves once the gateway's Redis client has reconnected. */
export async function redisReconnected(gateway: Gateway): Promise<void> {
  if (gateway.redis.status === 'ready') return
  await new Promise((resolve) => gateway.redis.once('ready', resolve))
}
