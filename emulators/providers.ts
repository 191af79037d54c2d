// All provider emulators at once, and the gateway environment that points at them: the
// development start and the browser test use exactly this, so a newcomer clicks through
// the same Kakao, Naver and Google the tests exercise.

import { startGoogleEmulator, type GoogleEmulator } from './google.js'
import { startKakaoEmulator, type KakaoEmulator } from './kakao.js'
import { startNaverEmulator, type NaverEmulator } from './naver.js'

export interface EmulatedProviders {
  google: GoogleEmulator
  kakao: KakaoEmulator
  naver: NaverEmulator
  /** GOOGLE_*, KAKAO_* and NAVER_* variables for the gateway. */
  env: Record<string, string>
  stop(): Promise<void>
}

export const EMULATED_CREDENTIALS = {
  google: { clientId: 'emulated-google-client', clientSecret: 'emulated-google-secret' },
  kakao: { clientId: 'emulated-kakao-rest-key', clientSecret: 'emulated-kakao-secret', appId: '1000001' },
  naver: { clientId: 'emulated-naver-client', clientSecret: 'emulated-naver-secret' },
}

/**
 * Starts the three emulators. Each accepts `redirectUris` plus the gateway's own callback
 * for it (`{publicUrl}/auth/callback/{provider}`). Ports: fixed ones for a stable
 * development start, free ones (0) for tests.
 */
export async function startEmulatedProviders(options: {
  publicUrl: string
  redirectUris: string[]
  ports?: { google?: number; kakao?: number; kakaoApi?: number; naver?: number }
}): Promise<EmulatedProviders> {
  const redirectUrisFor = (provider: string) => [...options.redirectUris, `${options.publicUrl}/auth/callback/${provider}`]
  const { google: googleApp, kakao: kakaoApp, naver: naverApp } = EMULATED_CREDENTIALS
  const [google, kakao, naver] = await Promise.all([
    startGoogleEmulator({ ...googleApp, redirectUris: redirectUrisFor('google'), port: options.ports?.google }),
    startKakaoEmulator({ ...kakaoApp, redirectUris: redirectUrisFor('kakao'), port: options.ports?.kakao, apiPort: options.ports?.kakaoApi }),
    startNaverEmulator({ ...naverApp, redirectUris: redirectUrisFor('naver'), port: options.ports?.naver }),
  ])
  return {
    google,
    kakao,
    naver,
    env: {
      GOOGLE_CLIENT_ID: googleApp.clientId,
      GOOGLE_CLIENT_SECRET: googleApp.clientSecret,
      GOOGLE_ISSUER: google.issuer,
      KAKAO_CLIENT_ID: kakaoApp.clientId,
      KAKAO_CLIENT_SECRET: kakaoApp.clientSecret,
      KAKAO_AUTH_URL: kakao.authUrl,
      KAKAO_API_URL: kakao.apiUrl,
      KAKAO_APP_IDS: kakaoApp.appId,
      NAVER_CLIENT_ID: naverApp.clientId,
      NAVER_CLIENT_SECRET: naverApp.clientSecret,
      NAVER_AUTH_URL: naver.authUrl,
      NAVER_API_URL: naver.apiUrl,
    },
    async stop() {
      await Promise.all([google.stop(), kakao.stop(), naver.stop()])
    },
  }
}
