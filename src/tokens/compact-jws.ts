// Signs our own tokens as compact JWS (RFC 7515 §7.1) with node:crypto, synchronously.
// jose signs through WebCrypto, whose every signature is an asynchronous job with its own
// argument checks, key normalisation and a hop through the thread pool: on the 2-CPU bench
// machine an ES256 token took 76–117 µs of CPU that way against 34–50 µs here, and every
// refresh and login signs one. Only signing is done here, of claims we build ourselves;
// every token we are shown is still verified by jose (access-tokens.ts, verifier/).

import { randomUUID, sign, type KeyObject } from 'node:crypto'
import type { SigningAlgorithm, SigningKey } from './signing-keys.js'

/** RFC 7518 §3.1: the digest each algorithm signs with; EdDSA hashes inside the signature. */
const DIGEST: Record<SigningAlgorithm, string | null> = { ES256: 'sha256', RS256: 'sha256', EdDSA: null }

export interface JwtClaims {
  [claim: string]: string | number | undefined
}

/**
 * The token: a header naming the key (`alg`, `kid`, `typ`) and the claims with `iat`,
 * `exp` (`ttlSeconds` later) and a fresh `jti`.
 */
export function signJwt(key: SigningKey, typ: string, claims: JwtClaims, ttlSeconds: number): string {
  const issuedAt = Math.floor(Date.now() / 1000)
  const header = encoded({ alg: key.alg, kid: key.kid, typ })
  const payload = encoded({ ...claims, iat: issuedAt, exp: issuedAt + ttlSeconds, jti: randomUUID() })
  const input = `${header}.${payload}`
  return `${input}.${signature(key.alg, key.privateKey, input).toString('base64url')}`
}

function signature(alg: SigningAlgorithm, privateKey: KeyObject, input: string): Buffer {
  const data = Buffer.from(input)
  // JWS wants ECDSA's r and s as two fixed-size integers, not DER (RFC 7518 §3.4).
  return alg === 'ES256' ? sign(DIGEST[alg], data, { key: privateKey, dsaEncoding: 'ieee-p1363' }) : sign(DIGEST[alg], data, privateKey)
}

function encoded(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}
