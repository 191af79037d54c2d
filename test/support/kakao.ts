// The Kakao emulator with the gateway settings that point at it, for tests of Kakao login
// and of Kakao's callbacks.

import { startKakaoEmulator, type KakaoEmulator } from '../../emulators/kakao.js'
import { REDIRECT_URI } from './gateway.js'

export const KAKAO_APP = { clientId: 'kakao-rest-api-key', clientSecret: 'kakao-client-secret', appId: '1234567' }

/** Starts the emulator; `env` holds the KAKAO_* variables for a gateway, the admin key included (plus `extra`). */
export async function startKakao(extra: Record<string, string> = {}): Promise<{ kakao: KakaoEmulator; env: Record<string, string> }> {
  // One admin key on both sides: Kakao's callbacks carry it, and the gateway's unlinks present it.
  const kakao = await startKakaoEmulator({ ...KAKAO_APP, redirectUris: [REDIRECT_URI], adminKey: extra.KAKAO_ADMIN_KEY || undefined })
  const env = {
    KAKAO_CLIENT_ID: KAKAO_APP.clientId,
    KAKAO_CLIENT_SECRET: KAKAO_APP.clientSecret,
    KAKAO_AUTH_URL: kakao.authUrl,
    KAKAO_API_URL: kakao.apiUrl,
    KAKAO_APP_IDS: KAKAO_APP.appId,
    KAKAO_ADMIN_KEY: kakao.adminKey,
    ...extra,
  }
  return { kakao, env }
}
