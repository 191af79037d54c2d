// Verifies the gateway's access tokens: JWS-signed JWTs in the RFC 9068 profile
// (`typ: at+jwt`), checked against the gateway's published key set (JWKS) with the
// RFC 8725 best practices: a pinned list of asymmetric algorithms, exact `iss`, `aud`,
// `exp`/`nbf` with a small clock tolerance, and no key taken from the token itself.

import * as jose from 'jose'

export interface VerifiedAccessToken {
  /** The user's opaque id at the gateway, or the client id of a machine-to-machine token. */
  sub: string
  /** The gateway session of a user's token (what logout ends); absent on client tokens. */
  sid?: string
  /** Set on a machine-to-machine token (client_credentials, RFC 9068 §2.2): the calling client. */
  clientId?: string
  /** The space-separated `scope` claim, split (RFC 9068 §2.2.3). */
  scopes: string[]
  /** Every claim of the token, as signed. */
  claims: jose.JWTPayload
}

export interface TokenVerifierOptions {
  /** The gateway's PUBLIC_URL: the exact `iss` of its tokens. */
  issuer: string
  /** The audience (or audiences) this service accepts in `aud`. */
  audience: string | string[]
  /** Default `${issuer}/.well-known/jwks.json`. */
  jwksUri?: string
  /** Default ['ES256', 'RS256', 'EdDSA'] (what the gateway can sign with); only asymmetric ones are accepted. */
  algorithms?: string[]
  /** Clock skew allowed on `exp`/`nbf`/`iat`, seconds; default 5, at most 30. */
  clockToleranceSeconds?: number
  /** Give up on a JWKS fetch after this long; default 3000 ms. */
  jwksTimeoutMs?: number
  /**
   * After a fetch, a token with an unknown `kid` triggers no new fetch for this long, so
   * random kids cannot turn into a fetch storm; default 30 s. Rotate by publishing a new
   * key before signing with it and no token ever meets the cooldown.
   */
  jwksCooldownSeconds?: number
}

/** The token is missing, malformed, forged, expired, or its session has ended: 401. */
export class TokenRejected extends Error {
  constructor(
    message: string,
    /** False when the request carried no credentials (RFC 6750 §3.1: no error code then). */
    readonly credentialsSent = true,
  ) {
    super(message)
    this.name = 'TokenRejected'
  }
}

/** The key set or the session store cannot be reached: 503, never a 401 that makes clients drop their tokens. */
export class VerifierUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'VerifierUnavailable'
  }
}

// Symmetric algorithms (HS*) would let anyone holding the public key sign (RFC 8725
// §3.1-3.2), and `none` signs nothing: neither can ever be configured.
const ASYMMETRIC_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512']
/** Ours are a few hundred bytes; longer strings are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 4096
/** Headers that name a key or where to fetch one: never trusted (RFC 8725 §3.10). */
const KEY_CARRYING_HEADERS = ['jku', 'jwk', 'x5u', 'x5c']

export function createTokenVerifier(options: TokenVerifierOptions): (token: string) => Promise<VerifiedAccessToken> {
  const { issuer, audience } = options
  if (!/^https?:\/\/[^/]/.test(issuer) || issuer.endsWith('/')) {
    throw new TypeError('issuer must be the gateway\'s PUBLIC_URL (http(s)://host, no trailing slash)')
  }
  if (audience.length === 0 || (Array.isArray(audience) && audience.some((value) => typeof value !== 'string' || value === ''))) {
    throw new TypeError('audience must be a non-empty string or list of strings')
  }
  const algorithms = options.algorithms ?? ['ES256', 'RS256', 'EdDSA']
  const refused = algorithms.filter((alg) => !ASYMMETRIC_ALGORITHMS.includes(alg))
  if (algorithms.length === 0 || refused.length > 0) {
    throw new TypeError(`algorithms must be asymmetric signature algorithms (refused: ${refused.join(', ') || 'an empty list'})`)
  }
  const clockTolerance = options.clockToleranceSeconds ?? 5
  if (!(clockTolerance >= 0 && clockTolerance <= 30)) throw new TypeError('clockToleranceSeconds must be between 0 and 30')
  const jwksUri = new URL(options.jwksUri ?? `${issuer}/.well-known/jwks.json`)
  if (jwksUri.protocol !== 'https:' && !(jwksUri.protocol === 'http:' && isLoopbackUrl(jwksUri))) {
    throw new TypeError('jwksUri must be https (plain http only on loopback)')
  }

  // jose caches the set (10 min), fetches it once for concurrent callers, and refetches
  // for an unknown kid at most once per cooldown: rotation works, a kid spray does not storm.
  // A set older than 10 min is refetched before use; if the gateway is unreachable then,
  // requests get 503 (fail closed), when its 10-minute tokens have mostly expired anyway.
  const remoteKeys = jose.createRemoteJWKSet(jwksUri, {
    timeoutDuration: options.jwksTimeoutMs ?? 3000,
    cooldownDuration: (options.jwksCooldownSeconds ?? 30) * 1000,
  })
  // A key set we cannot fetch or read is our outage, not the token's fault.
  const keyFor: jose.JWTVerifyGetKey = async (header, token) => {
    try {
      return await remoteKeys(header, token)
    } catch (error) {
      if (error instanceof jose.errors.JWKSNoMatchingKey || error instanceof jose.errors.JWKSMultipleMatchingKeys) throw error
      throw new VerifierUnavailable('the gateway\'s key set cannot be fetched', { cause: error })
    }
  }
  const verifyOptions: jose.JWTVerifyOptions = {
    issuer,
    audience,
    algorithms,
    // RFC 9068 §4: refuse ID tokens, signup tickets and other JWTs signed by the same key.
    typ: 'at+jwt',
    requiredClaims: ['exp', 'sub'],
    clockTolerance,
  }

  return async function verify(token: string): Promise<VerifiedAccessToken> {
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenRejected('the access token is too long')
    // Compact JWS only: a JWE (5 parts, RFC 8725 §3.1) or anything else never reaches jose.
    if (token.split('.').length !== 3) throw new TokenRejected('the access token is not a signed JWT')
    let header: jose.ProtectedHeaderParameters
    try {
      header = jose.decodeProtectedHeader(token)
    } catch {
      throw new TokenRejected('the access token is malformed')
    }
    if (typeof header.kid !== 'string' || header.kid.length > 256 || KEY_CARRYING_HEADERS.some((name) => name in header)) {
      throw new TokenRejected('the access token is invalid')
    }
    let claims: jose.JWTPayload
    try {
      claims = (await jose.jwtVerify(token, keyFor, verifyOptions)).payload
    } catch (error) {
      if (error instanceof VerifierUnavailable) throw error
      if (error instanceof jose.errors.JWTExpired) throw new TokenRejected('the access token has expired')
      if (error instanceof jose.errors.JOSEError) throw new TokenRejected('the access token is invalid')
      throw error
    }
    const { sub, sid, client_id: clientId, scope } = claims
    if (typeof sub !== 'string' || sub === '' || (scope !== undefined && typeof scope !== 'string')) {
      throw new TokenRejected('the access token is invalid')
    }
    const scopes = scope ? scope.split(' ').filter(Boolean) : []
    // A user's token names its session (and, as RFC 9068 requires, the app as client_id); a
    // client's token has no session and names the client as its subject.
    if (typeof sid === 'string' && sid !== '' && (clientId === undefined || typeof clientId === 'string')) return { sub, sid, scopes, claims }
    if (sid === undefined && typeof clientId === 'string' && clientId === sub) return { sub, clientId: sub, scopes, claims }
    throw new TokenRejected('the access token is invalid')
  }
}

/** Plain http is accepted only for a key set on this machine (development, tests). */
function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
