// Every provider the gateway knows. Adding a provider: one module in providers/ and one line
// here — or, for a standard OpenID Connect provider, no code at all (generic-oidc.ts).

import { UnsupportedProvider } from '../src/common/errors.js'
import { apple } from './apple.js'
import { genericOidcProviders } from './generic-oidc.js'
import { google } from './google.js'
import { kakao } from './kakao.js'
import { naver } from './naver.js'
import type { ProviderCallObserver } from './provider-http.js'
import type { IdentityProvider, ProviderDefinition } from './types.js'

export const providerDefinitions: readonly ProviderDefinition<any>[] = [kakao, naver, google, apple]

/** A provider the configuration enabled: its definition and the settings read for it. */
export interface ConfiguredProvider {
  definition: ProviderDefinition<any>
  settings: unknown
}

/** The built-in providers, then every generic OpenID Connect provider the environment names. */
export function providerDefinitionsFor(env: Record<string, string | undefined>): ProviderDefinition<any>[] {
  return [...providerDefinitions, ...genericOidcProviders(env)]
}

/** What the registry builds adapters from: the enabled providers and how long a provider call may take. */
export interface ProviderRegistrySettings {
  providers: Record<string, ConfiguredProvider>
  providerHttpTimeoutSeconds: number
}

export class ProviderRegistry {
  // A Map, not an object: `provider: "__proto__"` must find nothing.
  private readonly providers = new Map<string, IdentityProvider>()

  /** `calls` hears of every provider HTTP call (the metrics), when given. */
  constructor(settings: ProviderRegistrySettings, calls?: ProviderCallObserver) {
    const runtime = { httpTimeoutSeconds: settings.providerHttpTimeoutSeconds, allowInsecureLoopback: true, calls }
    for (const [name, { definition, settings: providerSettings }] of Object.entries(settings.providers)) {
      this.providers.set(name, definition.create(providerSettings, runtime))
    }
  }

  get(name: string): IdentityProvider {
    const provider = this.providers.get(name)
    if (!provider) throw new UnsupportedProvider(`provider "${name}" is unknown or not enabled`)
    return provider
  }

  get names(): string[] {
    return [...this.providers.keys()]
  }
}
