// Google: a plain OpenID Connect provider (developers.google.com/identity/openid-connect). The subject is the ID
// token's `sub`; email counts only with `email_verified: true`.

import { OpenIdConnectProvider, type OpenIdConnectSettings } from './openid-connect.js'
import { splitList } from '../src/common/env-values.js'
import { readProviderUrl } from './settings.js'
import type { ProviderDefinition } from './types.js'

export const google: ProviderDefinition<OpenIdConnectSettings> = {
  name: 'google',
  readSettings(env, problems, production) {
    const clientId = env.GOOGLE_CLIENT_ID?.trim()
    if (!clientId) return undefined
    const clientSecret = env.GOOGLE_CLIENT_SECRET?.trim()
    if (!clientSecret) problems.push('GOOGLE_CLIENT_SECRET is required when GOOGLE_CLIENT_ID is set')
    const issuer = readProviderUrl(env, 'GOOGLE_ISSUER', 'https://accounts.google.com', problems, production)
    const audiences = splitList(env.GOOGLE_AUDIENCES)
    return { clientId, clientSecret: clientSecret ?? '', issuer, scope: 'openid email profile', audiences: [clientId, ...audiences] }
  },
  create: (settings, runtime) => new OpenIdConnectProvider('google', settings, runtime),
}
