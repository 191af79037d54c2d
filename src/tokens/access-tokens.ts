// Our access tokens (RFC 9068 profile): a JWS with `typ: at+jwt` and `kid`, signed with
// the current key; verified against our own key set with a pinned algorithm list, so
// `alg: none`, HS256-with-our-public-key and foreign keys are all refused.
//
// RFC 9068 §2.2 requires `client_id` in every token. A user's token names the apps that log
// users in through the gateway, as one client (APP_CLIENT_ID), and its session (`sid`); a
// client's token (client_credentials) names that client as both `sub` and `client_id`, and
// has no session. `sid` is what tells the two apart.

import * as jose from 'jose'
import { InvalidToken } from '../common/errors.js'
import { signJwt, type JwtClaims } from './compact-jws.js'
import { SIGNING_ALGORITHMS, type SigningKeySet } from './signing-keys.js'

export interface AccessTokenSubject {
  /** The user's opaque public id. */
  userId: string
  sessionId: string
  /** Space-separated scopes the user holds on the audience. */
  scope?: string
  /** RFC 8707 resource the token is for; default TOKEN_AUDIENCE (the gateway itself). */
  audience?: string
  /** Seconds since the epoch: when the user logged in (RFC 9068 §2.2.1 `auth_time`); kept across refreshes. */
  authTime?: number
}

export interface VerifiedAccessToken {
  userId: string
  sessionId: string
  /** When the user logged in; undefined for a token from before the claim existed. */
  authTime?: number
  scope?: string
  tokenId: string
  expiresAt: number
}

/** A machine-to-machine token (client_credentials): no user, no session. */
export interface ClientTokenSubject {
  clientId: string
  audience: string
  scope: string
}

export interface VerifiedClientToken {
  clientId: string
  scopes: string[]
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
    private readonly options: { issuer: string; audience: string; ttlSeconds: number; appClientId: string },
  ) {
    this.verificationKeys = jose.createLocalJWKSet(keys.jwks)
  }

  async issue(subject: AccessTokenSubject): Promise<IssuedAccessToken> {
    const claims: JwtClaims = { client_id: this.options.appClientId, sid: subject.sessionId }
    if (subject.authTime !== undefined) claims.auth_time = subject.authTime
    if (subject.scope) claims.scope = subject.scope
    return this.sign(claims, subject.userId, subject.audience ?? this.options.audience)
  }

  /** RFC 9068 §2.2: `sub` and `client_id` are the client's id when no user is involved. */
  async issueForClient(subject: ClientTokenSubject): Promise<IssuedAccessToken> {
    const claims: JwtClaims = { client_id: subject.clientId }
    if (subject.scope) claims.scope = subject.scope
    return this.sign(claims, subject.clientId, subject.audience)
  }

  private async sign(claims: JwtClaims, subject: string, audience: string): Promise<IssuedAccessToken> {
    const { ttlSeconds, issuer } = this.options
    const accessToken = signJwt(this.keys.current, 'at+jwt', { ...claims, iss: issuer, sub: subject, aud: audience }, ttlSeconds)
    return { accessToken, expiresIn: ttlSeconds }
  }

  /** A user's token for the gateway itself: signature, typ, iss, aud, exp; not whether the session lives. */
  async verify(token: string): Promise<VerifiedAccessToken> {
    const payload = await this.verifyJwt(token, ['sub', 'sid', 'jti', 'iat', 'exp'])
    if (typeof payload.sid !== 'string' || typeof payload.sub !== 'string') throw new InvalidToken('the access token is invalid')
    return {
      userId: payload.sub,
      sessionId: payload.sid,
      tokenId: String(payload.jti),
      expiresAt: payload.exp! * 1000,
      scope: typeof payload.scope === 'string' ? payload.scope : undefined,
      authTime: typeof payload.auth_time === 'number' ? payload.auth_time : undefined,
    }
  }

  /** A client's (M2M) token for the gateway itself; user tokens are not client tokens. */
  async verifyClient(token: string): Promise<VerifiedClientToken> {
    const payload = await this.verifyJwt(token, ['sub', 'client_id', 'jti', 'iat', 'exp'])
    if (payload.sid !== undefined || typeof payload.client_id !== 'string' || payload.client_id !== payload.sub) {
      throw new InvalidToken('a client access token is required')
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : []
    return { clientId: payload.client_id, scopes }
  }

  /** Any of our access tokens, for whatever audience (introspection, RFC 7662): its claims if genuine and unexpired. */
  inspect(token: string): Promise<jose.JWTPayload> {
    return this.verifyJwt(token, ['sub', 'jti', 'iat', 'exp'], null)
  }

  private async verifyJwt(token: string, requiredClaims: string[], audience: string | null = this.options.audience): Promise<jose.JWTPayload> {
    if (token.length > MAX_TOKEN_LENGTH) throw new InvalidToken('the access token is malformed')
    try {
      const { payload } = await jose.jwtVerify(token, this.verificationKeys, {
        issuer: this.options.issuer,
        ...(audience === null ? {} : { audience }),
        algorithms: [...SIGNING_ALGORITHMS],
        typ: 'at+jwt',
        requiredClaims,
        clockTolerance: 5,
      })
      return payload
    } catch (error) {
      if (error instanceof jose.errors.JWTExpired) throw new InvalidToken('the access token has expired')
      throw new InvalidToken('the access token is invalid')
    }
  }
}
