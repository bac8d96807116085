"""Authenticators that `authenticate` tries in turn: static tokens from the TOML, then Auth0 JWTs.

Each is a callable `(token, state) -> Principal | None`; None means the token is
not of its kind, and a token of its kind that fails verification raises a 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from app.auth.config import StaticToken
from app.auth.dependencies import Principal
from app.auth.jwt_verifier import JwtVerifier, looks_like_jwt
from app.state import AppState


class StaticTokenAuthenticator:
    """Matches the bearer token against the configured static tokens in constant time."""

    def __init__(self, tokens: Sequence[StaticToken]) -> None:
        self.tokens = tuple(tokens)

    async def __call__(self, token: str, state: AppState) -> Principal | None:
        presented = token.encode()
        matched: StaticToken | None = None
        # Every token is compared, so the time taken does not reveal which one matched.
        for candidate in self.tokens:
            if hmac.compare_digest(presented, candidate.token) and matched is None:
                matched = candidate
        if matched is None:
            return None
        return Principal(subject=f"token:{matched.name}", scopes=matched.scopes, method="static")


class JwtAuthenticator:
    """Verifies tokens that have the JWT shape; leaves other tokens to the next authenticator."""

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, token: str, state: AppState) -> Principal | None:
        if not looks_like_jwt(token):
            return None
        return await self.verifier.verify(token)
