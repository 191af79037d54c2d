// RFC 7662 introspection: only authenticated clients may ask; a token is active while it is
// genuine, unexpired and its session lives. A resource server without access to the
// gateway's Redis uses it through the verifier, and sees a logout within its cache time.

import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { ClientDirectory } from '../../src/clients/client-directory.js'
import { loginWithGoogle, startTestGateway } from '../support/gateway.js'
import { call, startResourceServer } from './fixtures/resource-server.js'

const gateway = await startTestGateway({ database: 'pglite', listen: true })
t.teardown(() => gateway.close())
const { publicUrl, tokenAudience } = gateway.config
const introspectUrl = `${publicUrl}/oauth/introspect`
const service = await new ClientDirectory(gateway.database.prisma).create('order service')
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

async function introspect(token: string, authorization = basic(service.clientId, service.clientSecret)) {
  const response = await fetch(introspectUrl, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

t.test('the introspection endpoint', async (t) => {
  const login = (await loginWithGoogle(gateway, { sub: 'introspected', name: 'Ida' })).json()
  const active = await introspect(login.accessToken)
  t.equal(active.status, 200)
  t.match(active.body, { active: true, token_type: 'Bearer', sub: login.user.id, aud: tokenAudience, iss: publicUrl, sid: String })

  const m2m = await gateway.app.gateway.accessTokens.issueForClient({ clientId: 'cart', audience: 'https://payments.example', scope: 'payment:charge' })
  t.match((await introspect(m2m.accessToken)).body, { active: true, client_id: 'cart', scope: 'payment:charge', aud: 'https://payments.example' })

  t.same((await introspect('garbage')).body, { active: false }, 'garbage is merely inactive')
  t.same((await introspect(login.refreshToken)).body, { active: false }, 'a refresh token is never an active access token')

  const unauthenticated = await fetch(introspectUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${login.accessToken}` })
  t.equal(unauthenticated.status, 401, 'only authenticated clients may ask')
  t.equal((await introspect(login.accessToken, basic(service.clientId, 'wrong-secret'))).status, 401)

  await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: login.refreshToken } })
  t.same((await introspect(login.accessToken)).body, { active: false }, 'after logout the token is inactive')
})

t.test('a verifier using introspection sees a logout within its cache time', async (t) => {
  const server = await startResourceServer({
    issuer: publicUrl,
    audience: tokenAudience,
    revocation: { introspection: { url: introspectUrl, clientId: service.clientId, clientSecret: service.clientSecret, cacheSeconds: 1 } },
  })
  t.teardown(() => server.close())
  const login = (await loginWithGoogle(gateway, { sub: 'cached', name: 'Cai' })).json()
  t.equal((await call(server, '/me', login.accessToken)).statusCode, 200)
  const loggedOutAt = Date.now()
  await gateway.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: login.refreshToken } })
  let refusedAfter: number | undefined
  while (Date.now() - loggedOutAt < 5000) {
    if ((await call(server, '/me', login.accessToken)).statusCode === 401) {
      refusedAfter = Date.now() - loggedOutAt
      break
    }
    await sleep(25)
  }
  t.comment(`refused ${refusedAfter} ms after logout (cache 1 s)`)
  t.ok(refusedAfter !== undefined && refusedAfter <= 1500, 'within the cache time')

  const unreachable = await startResourceServer({
    issuer: publicUrl,
    audience: tokenAudience,
    revocation: { introspection: { url: 'http://127.0.0.1:1/oauth/introspect', clientId: service.clientId, clientSecret: service.clientSecret } },
  })
  t.teardown(() => unreachable.close())
  const fresh = (await loginWithGoogle(gateway, { sub: 'cached', name: 'Cai' })).json()
  t.equal((await call(unreachable, '/me', fresh.accessToken)).statusCode, 503, 'an unreachable gateway fails closed with 503')
})
