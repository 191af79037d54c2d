// Verifying the gateway's access tokens with jose: every key type the gateway signs with
// (ES256, RS256, EdDSA) works.
import * as jose from 'jose'

export function accessTokenVerifier({ issuer, audience }: { issuer: string; audience: string }) {
  // Fetched on first use and cached; a token with an unknown kid refetches (at most every 30 s).
  const keys = jose.createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`))
  return async (token: string) => {
    const { payload } = await jose.jwtVerify(token, keys, {
      issuer, // the gateway's PUBLIC_URL
      audience, // your service's resource (TOKEN_AUDIENCE, or the resource a token was asked for)
      algorithms: ['ES256', 'RS256', 'EdDSA'],
      typ: 'at+jwt', // RFC 9068: an access token, not some other JWT signed by the same key
      requiredClaims: ['sub', 'client_id', 'exp'],
    })
    return payload
  }
}
