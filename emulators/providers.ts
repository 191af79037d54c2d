// All provider emulators at once, and the gateway environment that points at them: the
// development start and the browser test use exactly this, so a newcomer clicks through
// the same Kakao, Naver, Google and Apple the tests exercise.

import { generateKeyPairSync } from 'node:crypto'
import { startAppleEmulator, type AppleEmulator } from './apple.js'
import { startGoogleEmulator, type GoogleEmulator } from './google.js'
import { startKakaoEmulator, type KakaoEmulator } from './kakao.js'
import { startNaverEmulator, type NaverEmulator } from './naver.js'

export interface EmulatedProviders {
  apple: AppleEmulator
  google: GoogleEmulator
  kakao: KakaoEmulator
  naver: NaverEmulator
  /** APPLE_*, GOOGLE_*, KAKAO_* and NAVER_* variables for the gateway. */
  env: Record<string, string>
  stop(): Promise<void>
}

export const EMULATED_CREDENTIALS = {
  google: { clientId: 'emulated-google-client', clientSecret: 'emulated-google-secret' },
  kakao: { clientId: 'emulated-kakao-rest-key', clientSecret: 'emulated-kakao-secret', appId: '1000001' },
  naver: { clientId: 'emulated-naver-client', clientSecret: 'emulated-naver-secret' },
  apple: { servicesId: 'com.example.gateway.web', bundleId: 'com.example.gateway', teamId: 'EMUTEAM001', keyId: 'EMUKEY0001' },
}

/**
 * Starts the four emulators. Each accepts `redirectUris` plus the gateway's own callback
 * for it (`{publicUrl}/auth/callback/{provider}`). Ports: fixed ones for a stable
 * development start, free ones (0) for tests.
 */
export async function startEmulatedProviders(options: {
  publicUrl: string
  redirectUris: string[]
  ports?: { google?: number; kakao?: number; kakaoApi?: number; naver?: number; apple?: number }
}): Promise<EmulatedProviders> {
  const redirectUrisFor = (provider: string) => [...options.redirectUris, `${options.publicUrl}/auth/callback/${provider}`]
  const { google: googleApp, kakao: kakaoApp, naver: naverApp } = EMULATED_CREDENTIALS
  const [google, kakao, naver, apple] = await Promise.all([
    startGoogleEmulator({ ...googleApp, redirectUris: redirectUrisFor('google'), port: options.ports?.google }),
    startKakaoEmulator({ ...kakaoApp, redirectUris: redirectUrisFor('kakao'), port: options.ports?.kakao, apiPort: options.ports?.kakaoApi }),
    startNaverEmulator({ ...naverApp, redirectUris: redirectUrisFor('naver'), port: options.ports?.naver }),
    startEmulatedApple({ redirectUris: redirectUrisFor('apple'), port: options.ports?.apple }),
  ])
  return {
    apple: apple.emulator,
    google,
    kakao,
    naver,
    env: {
      ...apple.env,
      GOOGLE_CLIENT_ID: googleApp.clientId,
      GOOGLE_CLIENT_SECRET: googleApp.clientSecret,
      GOOGLE_ISSUER: google.issuer,
      KAKAO_CLIENT_ID: kakaoApp.clientId,
      KAKAO_CLIENT_SECRET: kakaoApp.clientSecret,
      KAKAO_AUTH_URL: kakao.authUrl,
      KAKAO_API_URL: kakao.apiUrl,
      KAKAO_APP_IDS: kakaoApp.appId,
      KAKAO_ADMIN_KEY: kakao.adminKey,
      NAVER_CLIENT_ID: naverApp.clientId,
      NAVER_CLIENT_SECRET: naverApp.clientSecret,
      NAVER_AUTH_URL: naver.authUrl,
      NAVER_API_URL: naver.apiUrl,
    },
    async stop() {
      await Promise.all([apple.emulator.stop(), google.stop(), kakao.stop(), naver.stop()])
    },
  }
}

/**
 * The Apple emulator with a developer key of its own (a fresh .p8 per start: its public
 * half goes to the emulator, the private half to the gateway), and the APPLE_* variables.
 */
export async function startEmulatedApple(options: { redirectUris: string[]; port?: number }): Promise<{ emulator: AppleEmulator; env: Record<string, string> }> {
  const { apple: app } = EMULATED_CREDENTIALS
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const emulator = await startAppleEmulator({
    teamId: app.teamId,
    keyId: app.keyId,
    developerPublicKey: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    servicesId: app.servicesId,
    bundleIds: [app.bundleId],
    redirectUris: options.redirectUris,
    port: options.port,
  })
  const env = {
    APPLE_CLIENT_ID: app.servicesId,
    APPLE_TEAM_ID: app.teamId,
    APPLE_KEY_ID: app.keyId,
    APPLE_PRIVATE_KEY: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    APPLE_AUDIENCES: app.bundleId,
    APPLE_ISSUER: emulator.issuer,
  }
  return { emulator, env }
}
