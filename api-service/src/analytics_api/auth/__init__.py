"""Auth0 bearer tokens: JWKS key cache, token verification, scope checks."""
