// Development start: the gateway exactly as `npm start` runs it, plus loopback emulators of
// Kakao, Naver, Google and Apple standing in for every provider that has no credentials configured,
// so a newcomer can log in at /demo without registering an app anywhere, and the emulator console
// (scripts/dev-console.ts) that makes the emulated Kakao and Apple call the gateway's callbacks.

import { startEmulatedProviders } from '../emulators/providers.js'
import { startDevConsole } from './dev-console.js'

const port = Number(process.env.PORT ?? 3000)
const publicUrl = process.env.PUBLIC_URL ?? `http://localhost:${port}`
process.env.ALLOWED_REDIRECT_URIS ??= `${publicUrl}/dev/callback`
process.env.DEMO_PAGE ??= 'true'

const emulated = ['GOOGLE', 'KAKAO', 'NAVER', 'APPLE'].filter((provider) => !process.env[`${provider}_CLIENT_ID`])
if (emulated.length > 0) {
  const base = Number(process.env.EMULATOR_BASE_PORT ?? 3101)
  const emulators = await startEmulatedProviders({
    publicUrl,
    redirectUris: process.env.ALLOWED_REDIRECT_URIS.split(',').map((uri) => uri.trim()),
    ports: { google: base, kakao: base + 1, kakaoApi: base + 2, naver: base + 3, apple: base + 4 },
  })
  for (const [name, value] of Object.entries(emulators.env)) {
    if (emulated.some((provider) => name.startsWith(`${provider}_`))) process.env[name] = value
  }
  console.log(`Emulated on loopback (no real credentials configured): ${emulated.join(', ').toLowerCase()}`)
  const withCallbacks = (['kakao', 'apple'] as const).filter((provider) => emulated.includes(provider.toUpperCase()))
  if (withCallbacks.length > 0) {
    const devConsole = await startDevConsole({ emulators, publicUrl, port: base + 5, providers: withCallbacks })
    console.log(`Provider callbacks (unlink, Apple notifications): ${devConsole.url}`)
  }
}
if (process.env.DEMO_PAGE === 'true') console.log(`Demo: ${publicUrl}/demo`)

await import('../src/main.js')
