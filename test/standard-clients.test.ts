// Standard OAuth libraries work against the gateway with their defaults: they discover it
// (RFC 8414, and the same document at the OpenID Connect path), authenticate the way they
// authenticate by default (openid-client: client_secret_post), and accept every access
// token as an RFC 9068 token (oauth4webapi's validateJwtAccessToken). Real gateway on
// loopback, real HTTP.

import * as oauth from 'oauth4webapi'
import * as oidc from 'openid-client'
import t from 'tap'
import { ClientDirectory } from '../src/clients/client-directory.js'
import type { ConfigError } from '../src/common/errors.js'
import { loadConfig } from '../src/config.js'
import { loginWithGoogle, startTestGateway } from './support/gateway.js'

const gateway = await startTestGateway({ listen: true })
t.teardown(() => gateway.close())
const { publicUrl: issuer, tokenAudience } = gateway.config
const clients = new ClientDirectory(gateway.database.prisma)
const reporting = await clients.create('reporting')
await clients.grant(reporting.clientId, tokenAudience, ['read:report'])

/** What RFC 8414 §2 names, and only members that are true of this gateway. */
const METADATA = {
  issuer,
  jwks_uri: `${issuer}/.well-known/jwks.json`,
  token_endpoint: `${issuer}/oauth/token`,
  token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
  grant_types_supported: ['client_credentials'],
  response_types_supported: [],
  introspection_endpoint: `${issuer}/oauth/introspect`,
  introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
}

t.test('RFC 8414 metadata: oauth4webapi discovers the gateway, and the document holds only standard, true members', async (t) => {
  const issuerUrl = new URL(issuer)
  const response = await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true })
  t.equal(new URL(response.url).pathname, '/.well-known/oauth-authorization-server')
  t.same(await oauth.processDiscoveryResponse(issuerUrl, response), METADATA)
})

t.test('the OpenID Connect path serves the same document, without what only an OpenID Provider could say', async (t) => {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`)
  t.equal(response.status, 200)
  const document = (await response.json()) as Record<string, unknown>
  t.same(document, METADATA)
  for (const member of ['userinfo_endpoint', 'id_token_signing_alg_values_supported', 'subject_types_supported', 'authorization_endpoint']) {
    t.notOk(member in document, `no ${member}: the gateway issues no ID tokens and has no UserInfo endpoint`)
  }
  t.same(await (await fetch(`${issuer}/auth/providers`)).json(), { providers: gateway.services.providers.names }, "the gateway's own facts live in its own document")
})

t.test('openid-client with its defaults: discovery, client_secret_post, introspection', async (t) => {
  const configuration = await oidc.discovery(new URL(issuer), reporting.clientId, reporting.clientSecret, undefined, { execute: [oidc.allowInsecureRequests] })
  t.equal(configuration.serverMetadata().token_endpoint, METADATA.token_endpoint)
  t.notOk(configuration.serverMetadata().userinfo_endpoint, 'no UserInfo endpoint is advertised, so fetchUserInfo() is never pointed at one that is not')

  const tokens = await oidc.clientCredentialsGrant(configuration, { scope: 'read:report' })
  t.equal(tokens.scope, 'read:report')
  const introspected = await oidc.tokenIntrospection(configuration, tokens.access_token)
  t.match(introspected, { active: true, client_id: reporting.clientId, sub: reporting.clientId, scope: 'read:report' })
})

t.test("every access token is an RFC 9068 token: oauth4webapi's validateJwtAccessToken accepts the user's and the client's", async (t) => {
  const issuerUrl = new URL(issuer)
  const as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true }))
  const validate = (token: string) =>
    oauth.validateJwtAccessToken(as, new Request(`${issuer}/resource`, { headers: { authorization: `Bearer ${token}` } }), tokenAudience, {
      [oauth.allowInsecureRequests]: true,
    })

  const login = await loginWithGoogle(gateway, { sub: 'rfc9068-user', name: 'Rita' })
  const user = await validate(login.json().accessToken)
  t.match(user, { iss: issuer, aud: tokenAudience, sub: login.json().user.id, client_id: 'app', sid: String })

  const tokenResponse = await fetch(`${issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: reporting.clientId, client_secret: reporting.clientSecret }),
  })
  const client = await validate(((await tokenResponse.json()) as { access_token: string }).access_token)
  t.match(client, { sub: reporting.clientId, client_id: reporting.clientId })
  t.notOk('sid' in client, 'a client token has no session: that, not client_id, tells it from a user token')
})

t.test("APP_CLIENT_ID names the users' tokens' client; it is a stable, printable label", async (t) => {
  t.equal(loadConfig({}).appClientId, 'app', 'the default')
  t.equal(loadConfig({ APP_CLIENT_ID: 'shop-app' }).appClientId, 'shop-app')
  const refused = (() => {
    try {
      return loadConfig({ APP_CLIENT_ID: 'two words' })
    } catch (error) {
      return error as ConfigError
    }
  })()
  t.same((refused as ConfigError).problems, ['APP_CLIENT_ID must be 1 to 128 printable ASCII characters without spaces'])
  const { accessToken } = await gateway.services.accessTokens.issue({ userId: 'u', sessionId: 's' })
  t.equal(JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).client_id, gateway.config.appClientId)
})
