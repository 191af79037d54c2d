// Every provider the gateway knows. Adding a provider: one module in providers/ and one line here.

import type { Config } from '../src/config.js'
import { UnsupportedProvider } from '../src/errors.js'
import { google } from './google.js'
import { kakao } from './kakao.js'
import { naver } from './naver.js'
import type { IdentityProvider, ProviderDefinition } from './types.js'

export const providerDefinitions: readonly ProviderDefinition<any>[] = [google, kakao, naver]

export class ProviderRegistry {
  // A Map, not an object: `provider: "__proto__"` must find nothing.
  private readonly providers = new Map<string, IdentityProvider>()

  constructor(config: Pick<Config, 'providers' | 'providerHttpTimeoutSeconds' | 'production'>) {
    const runtime = { httpTimeoutSeconds: config.providerHttpTimeoutSeconds, allowInsecureLoopback: true }
    for (const definition of providerDefinitions) {
      const settings = config.providers[definition.name]
      if (settings !== undefined) this.providers.set(definition.name, definition.create(settings, runtime))
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
