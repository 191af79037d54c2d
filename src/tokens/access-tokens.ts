// Our access tokens (RFC 9068 profile): a JWS with `typ: at+jwt` and `kid`, signed with
// the current key; verified against our own key set with a pinned algorithm list, so
// `alg: none`, HS256-with-our-public-key and foreign keys are all refused.

import { randomUUID } from 'node:crypto'
import * as jose from 'jose'
import { InvalidToken } from '../errors.js'
import { SIGNING_ALGORITHMS, type SigningKeySet } from './signing-keys.js'

export interface AccessTokenSubject {
  /** The user's opaque public id. */
  userId: string
  sessionId: string
  scope?: string
}

export interface VerifiedAccessToken extends AccessTokenSubject {
  tokenId: string
  expiresAt: number
}

export interface IssuedAccessToken {
  accessToken: string
  expiresIn: number
}

/** Longer strings are refused before any parsing: our tokens are a few hundred bytes. */
const MAX_TOKEN_LENGTH = 4096

export class AccessTokens {
  private readonly verificationKeys: ReturnType<typeof jose.createLocalJWKSet>

  constructor(
    private readonly keys: SigningKeySet,
    private readonly options: { issuer: string; audience: string; ttlSeconds: number },
  ) {
    this.verificationKeys = jose.createLocalJWKSet(keys.jwks)
  }

  async issue(subject: AccessTokenSubject): Promise<IssuedAccessToken> {
    const { current } = this.keys
    const claims: jose.JWTPayload = { sid: subject.sessionId }
    if (subject.scope) claims.scope = subject.scope
    const accessToken = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: current.alg, kid: current.kid, typ: 'at+jwt' })
      .setIssuer(this.options.issuer)
      .setSubject(subject.userId)
      .setAudience(this.options.audience)
      .setIssuedAt()
      .setExpirationTime(`${this.options.ttlSeconds}s`)
      .setJti(randomUUID())
      .sign(current.privateKey)
    return { accessToken, expiresIn: this.options.ttlSeconds }
  }

  /** Checks signature, typ, iss, aud, exp; says nothing of whether the session still lives. */
  async verify(token: string): Promise<VerifiedAccessToken> {
    if (token.length > MAX_TOKEN_LENGTH) throw new InvalidToken('the access token is malformed')
    try {
      const { payload } = await jose.jwtVerify(token, this.verificationKeys, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        algorithms: [...SIGNING_ALGORITHMS],
        typ: 'at+jwt',
        requiredClaims: ['sub', 'sid', 'jti', 'iat', 'exp'],
        clockTolerance: 5,
      })
      if (typeof payload.sid !== 'string' || typeof payload.sub !== 'string') throw new Error('bad claims')
      return {
        userId: payload.sub,
        sessionId: payload.sid,
        tokenId: String(payload.jti),
        expiresAt: payload.exp! * 1000,
        scope: typeof payload.scope === 'string' ? payload.scope : undefined,
      }
    } catch (error) {
      if (error instanceof jose.errors.JWTExpired) throw new InvalidToken('the access token has expired')
      throw new InvalidToken('the access token is invalid')
    }
  }
}
