// Any OpenID Connect provider, configured by environment alone: OIDC_<NAME>_ISSUER,
// _CLIENT_ID, _CLIENT_SECRET, and optionally _SCOPE and _AUDIENCES. The provider is then
// called "<name>" (lower case) in `provider` and in /auth/authorize/<name>.

import { OpenIdConnectProvider, type OpenIdConnectSettings } from './openid-connect.js'
import { splitList } from '../src/common/env-values.js'
import { readProviderUrl } from './settings.js'
import type { ProviderDefinition } from './types.js'

/** One word per name, so OIDC_<NAME>_CLIENT_ID can never be read two ways. */
const ISSUER_VARIABLE = /^OIDC_([A-Z][A-Z0-9]*)_ISSUER$/

export function genericOidcProviders(env: Record<string, string | undefined>): ProviderDefinition<OpenIdConnectSettings>[] {
  const names = Object.keys(env)
    .map((variable) => ISSUER_VARIABLE.exec(variable)?.[1])
    .filter((name): name is string => name !== undefined)
    .sort()
  return names.map((NAME) => {
    const name = NAME.toLowerCase()
    const variable = (suffix: string) => `OIDC_${NAME}_${suffix}`
    return {
      name,
      readSettings(env, problems, production) {
        const clientId = env[variable('CLIENT_ID')]?.trim()
        const clientSecret = env[variable('CLIENT_SECRET')]?.trim()
        if (!clientId) problems.push(`${variable('CLIENT_ID')} is required when ${variable('ISSUER')} is set`)
        if (!clientSecret) problems.push(`${variable('CLIENT_SECRET')} is required when ${variable('ISSUER')} is set`)
        const issuer = readProviderUrl(env, variable('ISSUER'), '', problems, production)
        const scope = env[variable('SCOPE')]?.trim() || 'openid email profile'
        if (!scope.split(/\s+/).includes('openid')) problems.push(`${variable('SCOPE')} must include "openid"`)
        const audiences = splitList(env[variable('AUDIENCES')])
        if (!clientId) return undefined
        return { issuer, clientId, clientSecret: clientSecret ?? '', scope, audiences: [clientId, ...audiences] }
      },
      create: (settings, runtime) => new OpenIdConnectProvider(name, settings, runtime),
    }
  })
}
