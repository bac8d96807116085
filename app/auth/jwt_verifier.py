"""Verify Auth0 access tokens: RS256 signature from the tenant JWKS, then iss, aud, exp and nbf.

`joserfc.jwt.decode` checks only the signature and the JSON, so the claims are
validated afterwards with `JWTClaimsRegistry`. The algorithm is checked from
the header before any key is looked up: HS256 would let anyone with a
public key forge tokens, and `none` has no signature at all.
"""

from __future__ import annotations

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import JWTClaimsRegistry

from app.auth.config import JwtConfig
from app.auth.dependencies import Principal
from app.auth.errors import invalid_token
from app.auth.jwks import JwksCache
from app.errors import AuthenticationError
from app.state import Clock

ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 16 * 1024


def looks_like_jwt(token: str) -> bool:
    """Return True for the compact serialization: three dot-separated parts."""
    return token.count(".") == 2


class JwtVerifier:
    """Verifier that turns a valid access token into a principal, or raises a 401 with the reason."""

    def __init__(self, config: JwtConfig, jwks: JwksCache, clock: Clock) -> None:
        self.config = config
        self.jwks = jwks
        self.clock = clock

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH:
            raise invalid_token("malformed_token", f"The token is longer than {MAX_TOKEN_LENGTH} characters.")
        header = _read_header(token)
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            raise invalid_token(
                "unsupported_algorithm",
                f"The token is signed with {algorithm!r}; this service accepts only RS256 tokens from the issuer.",
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("unknown_key", "The token header has no key id (kid); request a token from the issuer.")
        key = await self.jwks.get_key(kid)
        if key is None:
            raise invalid_token(
                "unknown_key",
                f"The token's key id {kid[:64]!r} is not among the issuer's signing keys; request a new token.",
            )
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        except BadSignatureError as exc:
            raise invalid_token("bad_signature", "The token's signature does not verify; request a new token.") from exc
        except JoseError as exc:
            raise invalid_token("malformed_token", f"The token could not be decoded ({exc.error}).") from exc
        self._validate_claims(decoded.claims)
        return _principal(decoded.claims)

    def _validate_claims(self, claims: dict[str, object]) -> None:
        registry = JWTClaimsRegistry(
            now=int(self.clock().timestamp()),
            leeway=self.config.leeway_seconds,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ClaimError as exc:
            raise self._claim_failure(exc, claims) from exc

    def _claim_failure(self, exc: ClaimError, claims: dict[str, object]) -> AuthenticationError:
        if isinstance(exc, ExpiredTokenError):
            return invalid_token("expired", f"The token expired at {claims.get('exp')} (Unix time); request a new token.")
        if isinstance(exc, MissingClaimError):
            return invalid_token("missing_claim", f"The token lacks the claim(s) {exc.claim}; request a token from the issuer.")
        if isinstance(exc, InvalidClaimError) and exc.claim == "aud":
            return invalid_token(
                "bad_audience",
                f"The token is for audience {claims.get('aud')!r}, not {self.config.audience!r}; "
                "request a token for this API.",
            )
        if isinstance(exc, InvalidClaimError) and exc.claim == "iss":
            return invalid_token(
                "bad_issuer",
                f"The token was issued by {claims.get('iss')!r}, not {self.config.issuer!r}.",
            )
        if isinstance(exc, InvalidClaimError) and exc.claim == "nbf":
            return invalid_token("not_yet_valid", f"The token is not valid before {claims.get('nbf')} (Unix time).")
        if isinstance(exc, InvalidClaimError) and exc.claim == "iat":
            return invalid_token("issued_in_future", f"The token was issued in the future ({claims.get('iat')}).")
        return invalid_token("invalid_claim", f"The token's claim {exc.claim!r} is invalid: {exc.description}.")


def _read_header(token: str) -> dict[str, object]:
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeEncodeError) as exc:
        raise invalid_token("malformed_token", "The token is not a valid JWS compact serialization.") from exc
    return dict(header)


def _principal(claims: dict[str, object]) -> Principal:
    """Collect scopes from `scope` (space-separated) and `permissions` (a list, with Auth0 RBAC)."""
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())
    permissions = claims.get("permissions")
    if isinstance(permissions, list):
        scopes.update(item for item in permissions if isinstance(item, str))
    return Principal(subject=str(claims["sub"]), scopes=frozenset(scopes), method="jwt")
