// The Google emulator's token revocation (/revoke, Google's oauth2.googleapis.com/revoke),
// driven over real HTTP as the gateway drives it when an account is deleted: listed in
// discovery, `token` with client_secret_post (openid-client's default) or Basic, each
// revocation of a live token recorded once with its subject, the token dead afterwards
// (userinfo 401), and failRevocation() answering a 5xx instead.

import t from 'tap'
import * as client from 'openid-client'
import { startGoogleEmulator, type EmulatedAccount } from '../../emulators/google.js'

const clientId = 'revoke-client.apps.googleusercontent.com'
const clientSecret = 'revoke-secret'
const redirectUri = 'http://127.0.0.1:3999/auth/google/callback'

const emulator = await startGoogleEmulator({ clientId, clientSecret, redirectUris: [redirectUri] })
t.teardown(() => emulator.stop())

const discover = (auth?: client.ClientAuth, secret = clientSecret) =>
  client.discovery(new URL(emulator.issuer), clientId, secret, auth, { execute: [client.allowInsecureRequests] })

let nextSub = 118_000_000_000_000_000_001n
const account = (): EmulatedAccount => ({ sub: String(nextSub++), email: 'leaving@example.com', name: 'Leaving' })

/** A code-flow sign-in with openid-client: the access token the gateway would hold. */
async function signIn(who: EmulatedAccount, config?: client.Configuration): Promise<string> {
  config ??= await discover()
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  })
  const tokens = await client.authorizationCodeGrant(config, await emulator.authorize(url, who), { pkceCodeVerifier: verifier, expectedState: state })
  return tokens.access_token
}

async function userinfoStatus(accessToken: string): Promise<number> {
  const res = await fetch(`${emulator.issuer}/v1/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } })
  await res.arrayBuffer()
  return res.status
}

async function revokeRaw(form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${emulator.issuer}/revoke`, { method: 'POST', headers, body: new URLSearchParams(form) })
  const text = await res.text()
  return { status: res.status, text }
}

const since = (before: number) => emulator.revocations().slice(before)

t.test('discovery lists /revoke as revocation_endpoint, as Google’s does', async (t) => {
  const meta = (await (await fetch(`${emulator.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>
  t.equal(meta.revocation_endpoint, `${emulator.issuer}/revoke`)
})

t.test('revoking the access token with client_secret_post: recorded once with its sub; the token is dead', async (t) => {
  const who = account()
  const config = await discover()
  const accessToken = await signIn(who, config)
  t.equal(await userinfoStatus(accessToken), 200, 'the token works before')
  const before = emulator.revocations().length

  t.same(await revokeRaw({ client_id: clientId, client_secret: clientSecret, token: accessToken, token_type_hint: 'access_token' }), { status: 200, text: '' })
  t.same(since(before), [{ tokenType: 'access_token', sub: who.sub }])
  t.equal(await userinfoStatus(accessToken), 401, 'userinfo refuses the revoked token')

  // RFC 7009: a token that is no longer valid is answered 200 as well, and nothing is recorded.
  await client.tokenRevocation(config, accessToken)
  t.same(await revokeRaw({ client_id: clientId, client_secret: clientSecret, token: 'never-issued' }), { status: 200, text: '' })
  t.equal(since(before).length, 1)
})

t.test('openid-client’s tokenRevocation (client_secret_post by default) and client_secret_basic both work', async (t) => {
  const first = account()
  const firstToken = await signIn(first)
  const before = emulator.revocations().length
  await client.tokenRevocation(await discover(), firstToken, { token_type_hint: 'access_token' })
  t.equal(await userinfoStatus(firstToken), 401)

  const second = account()
  const basic = await discover(client.ClientSecretBasic(clientSecret))
  const secondToken = await signIn(second, basic)
  await client.tokenRevocation(basic, secondToken)
  t.equal(await userinfoStatus(secondToken), 401)
  t.same(since(before), [{ tokenType: 'access_token', sub: first.sub }, { tokenType: 'access_token', sub: second.sub }])
})

t.test('refused: a wrong secret, no client authentication, no token; nothing recorded, the token lives', async (t) => {
  const who = account()
  const accessToken = await signIn(who)
  const before = emulator.revocations().length

  const wrong = await revokeRaw({ client_id: clientId, client_secret: 'not-the-secret', token: accessToken })
  t.equal(wrong.status, 401)
  t.match(JSON.parse(wrong.text), { error: 'invalid_client' })
  await t.rejects(client.tokenRevocation(await discover(undefined, 'not-the-secret'), accessToken), { name: 'ResponseBodyError', error: 'invalid_client' }, 'openid-client too')

  // Google itself also takes an unauthenticated `token`; oidc-provider wants the client.
  const anonymous = await revokeRaw({ token: accessToken })
  t.equal(anonymous.status, 400)
  t.match(JSON.parse(anonymous.text), { error: 'invalid_request' })

  const noToken = await revokeRaw({ client_id: clientId, client_secret: clientSecret })
  t.equal(noToken.status, 400)
  t.match(JSON.parse(noToken.text), { error: 'invalid_request' })

  t.same(since(before), [])
  t.equal(await userinfoStatus(accessToken), 200)
})

t.test('failRevocation: the next calls answer the status and revoke nothing', async (t) => {
  const who = account()
  const config = await discover()
  const accessToken = await signIn(who, config)
  const before = emulator.revocations().length
  const form = { client_id: clientId, client_secret: clientSecret, token: accessToken }

  emulator.failRevocation(1)
  const unavailable = await revokeRaw(form)
  t.equal(unavailable.status, 503, 'the default is 503')
  t.match(JSON.parse(unavailable.text), { error: String })

  emulator.failRevocation(2, 500)
  t.equal((await revokeRaw(form)).status, 500)
  await t.rejects(client.tokenRevocation(config, accessToken), 'openid-client sees the 500 as a failure')

  t.same(since(before), [], 'no faulted call revoked anything')
  t.equal(await userinfoStatus(accessToken), 200, 'the token still works')

  t.same(await revokeRaw(form), { status: 200, text: '' }, 'the faults are used up: the revocation goes through')
  t.same(since(before), [{ tokenType: 'access_token', sub: who.sub }])
  t.equal(await userinfoStatus(accessToken), 401)
})
