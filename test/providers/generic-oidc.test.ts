// Provider-agnostic for real: a standard OpenID Connect provider is added by configuration
// alone (OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET), with no code, and behaves like any
// built-in provider: login, signup, and identities kept apart from other providers.

import t from 'tap'
import { ConfigError } from '../../src/common/errors.js'
import { loadConfig } from '../../src/config.js'
import { startGoogleEmulator } from '../../emulators/google.js'
import { PUBLIC_URL, REDIRECT_URI, startTestGateway } from '../support/gateway.js'

const acmeApp = { clientId: 'acme-gateway', clientSecret: 'acme-secret' }
const acme = await startGoogleEmulator({ ...acmeApp, redirectUris: [REDIRECT_URI, `${PUBLIC_URL}/auth/callback/acme`] })
t.teardown(() => acme.stop())
const gateway = await startTestGateway({
  database: 'pglite',
  env: { OIDC_ACME_ISSUER: acme.issuer, OIDC_ACME_CLIENT_ID: acmeApp.clientId, OIDC_ACME_CLIENT_SECRET: acmeApp.clientSecret },
})
t.teardown(() => gateway.close())
const { app } = gateway

async function loginWithAcme(account: { sub: string; name?: string }) {
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'acme', redirectUri: REDIRECT_URI } })
  const { authorizationUrl, state } = start.json()
  const code = (await acme.authorize(authorizationUrl, account)).searchParams.get('code')
  return app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'acme', code, state, redirectUri: REDIRECT_URI } })
}

t.test('a configured OIDC provider logs users in like a built-in one', async (t) => {
  const providers = await app.inject({ method: 'GET', url: '/auth/providers' })
  t.ok(providers.json().providers.includes('acme'), 'it is announced')
  const login = await loginWithAcme({ sub: 'acme-user-1', name: 'Ada' })
  t.equal(login.statusCode, 200, { body: login.body })
  t.match(login.json(), { status: 'authenticated', isNewUser: true, user: { nickname: 'Ada' } })
  const identities = await gateway.database.prisma.identity.findMany({ where: { provider: 'acme' } })
  t.same(identities.map((identity) => identity.subject), ['acme-user-1'])
})

t.test('the same subject at two providers is two people, never linked', async (t) => {
  const viaAcme = await loginWithAcme({ sub: 'shared-subject', name: 'From Acme' })
  const start = await app.inject({ method: 'POST', url: '/auth/login/start', payload: { provider: 'google', redirectUri: REDIRECT_URI } })
  const code = await gateway.codeFor(start.json().authorizationUrl, { sub: 'shared-subject', name: 'From Google' })
  const viaGoogle = await app.inject({ method: 'POST', url: '/auth/login', payload: { provider: 'google', code, state: start.json().state, redirectUri: REDIRECT_URI } })
  t.not(viaAcme.json().user.id, viaGoogle.json().user.id)
})

t.test('an incomplete generic provider stops start-up with one line per problem', async (t) => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env)
      return []
    } catch (error) {
      return (error as ConfigError).problems
    }
  }
  t.same(problems({ OIDC_ACME_ISSUER: 'https://id.acme.example' }), [
    'OIDC_ACME_CLIENT_ID is required when OIDC_ACME_ISSUER is set',
    'OIDC_ACME_CLIENT_SECRET is required when OIDC_ACME_ISSUER is set',
  ])
  t.match(
    problems({ OIDC_GOOGLE_ISSUER: 'https://id.example', OIDC_GOOGLE_CLIENT_ID: 'x', OIDC_GOOGLE_CLIENT_SECRET: 'y', GOOGLE_CLIENT_ID: 'g', GOOGLE_CLIENT_SECRET: 's' }).join('\n'),
    /provider "google" is configured twice/,
  )
  t.match(problems({ OIDC_ACME_ISSUER: 'https://id.acme.example', OIDC_ACME_CLIENT_ID: 'x', OIDC_ACME_CLIENT_SECRET: 'y', OIDC_ACME_SCOPE: 'email' }).join('\n'), /must include "openid"/)
  t.same(Object.keys(loadConfig({ OIDC_CONSTRUCTOR_ISSUER: 'https://id.example', OIDC_CONSTRUCTOR_CLIENT_ID: 'x', OIDC_CONSTRUCTOR_CLIENT_SECRET: 'y' }).providers), ['constructor'], 'any one-word name works')
})
