// Verifying the gateway's access tokens with jsonwebtoken and jwks-rsa. Use ES256 or RS256
// keys: jsonwebtoken knows no EdDSA.
import jwt from 'jsonwebtoken'
import jwksClient from 'jwks-rsa'

export function accessTokenVerifier({ issuer, audience }: { issuer: string; audience: string }) {
  const jwks = jwksClient({ jwksUri: `${issuer}/.well-known/jwks.json`, cache: true, rateLimit: true })
  const keyFor: jwt.GetPublicKeyOrSecret = (header, callback) => {
    jwks.getSigningKey(header.kid).then((key) => callback(null, key.getPublicKey()), callback)
  }
  return (token: string) =>
    new Promise<jwt.JwtPayload>((resolve, reject) => {
      jwt.verify(token, keyFor, { issuer, audience, algorithms: ['ES256', 'RS256'], complete: true }, (error, decoded) => {
        if (error || !decoded) return reject(error)
        // jsonwebtoken has no typ check. RFC 9068: an access token, not some other JWT signed by the same key.
        if (decoded.header.typ !== 'at+jwt') return reject(new jwt.JsonWebTokenError('not an access token'))
        const claims = decoded.payload as jwt.JwtPayload
        if (typeof claims.sub !== 'string' || typeof claims.client_id !== 'string') return reject(new jwt.JsonWebTokenError('not an access token'))
        resolve(claims)
      })
    })
}
