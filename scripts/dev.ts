// Development start: the gateway exactly as `npm start` runs it, plus a loopback Google
// emulator standing in for any provider that has no credentials configured, so a
// newcomer can log in without registering an app anywhere.

import { startGoogleEmulator } from '../emulators/google.js'

const port = Number(process.env.PORT ?? 3000)
const publicUrl = process.env.PUBLIC_URL ?? `http://localhost:${port}`
process.env.ALLOWED_REDIRECT_URIS ??= `${publicUrl}/dev/callback`
process.env.DEMO_PAGE ??= 'true'

if (!process.env.GOOGLE_CLIENT_ID) {
  const google = await startGoogleEmulator({
    clientId: 'dev-google-client',
    clientSecret: 'dev-google-secret',
    redirectUris: [...process.env.ALLOWED_REDIRECT_URIS.split(',').map((uri) => uri.trim()), `${publicUrl}/auth/callback/google`],
    port: Number(process.env.GOOGLE_EMULATOR_PORT ?? 3101),
  })
  Object.assign(process.env, { GOOGLE_CLIENT_ID: 'dev-google-client', GOOGLE_CLIENT_SECRET: 'dev-google-secret', GOOGLE_ISSUER: google.issuer })
  console.log(`Google is emulated at ${google.issuer} (no real credentials configured)`)
}
if (process.env.DEMO_PAGE === 'true') console.log(`Demo: ${publicUrl}/demo`)

await import('../src/main.js')
