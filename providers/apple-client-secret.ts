// Apple's client_secret is not a fixed string but an ES256 JWT the developer signs with
// their .p8 key: header kid = the key id; iss = the Team ID, sub = the client id the code
// was issued to (the Services ID for web codes, the bundle ID for native ones), aud =
// https://appleid.apple.com, and at most about six months between iat and exp. Signing
// is cheap but not free, so one secret per client id is made, cached, and replaced once
// half its life has passed: a secret in use never comes within half a lifetime of expiry.

import type { KeyObject } from 'node:crypto'
import * as jose from 'jose'

/** Apple refuses a client_secret whose exp lies further than this after its iat. */
export const APPLE_MAX_CLIENT_SECRET_SECONDS = 15_777_000
/** The audience Apple demands in every client_secret, whatever URL its endpoints are reached at. */
const APPLE_AUDIENCE = 'https://appleid.apple.com'

export interface AppleSigningKey {
  teamId: string
  keyId: string
  privateKey: KeyObject
  /** How long each secret is valid, at most APPLE_MAX_CLIENT_SECRET_SECONDS. */
  lifetimeSeconds: number
}

export class AppleClientSecrets {
  private readonly made = new Map<string, { secret: Promise<string>; renewAt: number }>()

  constructor(private readonly key: AppleSigningKey) {}

  /** The client_secret for `clientId`: the cached one, or a new one once half its life is gone. */
  for(clientId: string): Promise<string> {
    const now = Date.now()
    const cached = this.made.get(clientId)
    if (cached && now < cached.renewAt) return cached.secret
    const secret = this.sign(clientId, Math.floor(now / 1000))
    this.made.set(clientId, { secret, renewAt: now + (this.key.lifetimeSeconds * 1000) / 2 })
    // A failed signature is not cached: the next call tries again.
    secret.catch(() => this.made.delete(clientId))
    return secret
  }

  private sign(clientId: string, issuedAt: number): Promise<string> {
    const { teamId, keyId, privateKey, lifetimeSeconds } = this.key
    return new jose.SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: keyId })
      .setIssuer(teamId)
      .setSubject(clientId)
      .setAudience(APPLE_AUDIENCE)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + lifetimeSeconds)
      .sign(privateKey)
  }
}
