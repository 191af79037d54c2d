# Verifying the gateway's access tokens with PyJWT (2.4 or later, with `cryptography`
# installed: pip install "pyjwt[crypto]", or Debian's python3-jwt). Every key type the
# gateway signs with (ES256, RS256, EdDSA) works.
import jwt


def access_token_verifier(issuer, audience):
    keys = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json", cache_keys=True)

    def verify(token):
        # RFC 9068: an access token, not some other JWT signed by the same key.
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        key = keys.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES256", "RS256", "EdDSA"],
            issuer=issuer,
            audience=audience,
            options={"require": ["sub", "client_id", "exp", "iat"]},
        )

    return verify
