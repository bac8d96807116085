"""Admin authentication: bearer tokens with scopes (static tokens and Auth0 JWTs).

As an application extension this package parses `[auth]`, and at startup
appends its authenticators to `state.extensions["app.auth.authenticators"]`
and registers the admin API counters.
"""

from __future__ import annotations

import os

import httpx

from app.auth.authenticators import JwtAuthenticator, StaticTokenAuthenticator
from app.auth.config import AuthConfig, parse_auth_config
from app.auth.jwks import JwksCache
from app.auth.jwt_verifier import JwtVerifier
from app.auth.observability import AuthMetrics
from app.auth.routing import METRICS_KEY
from app.auth.settings import AuthSettings
from app.config import AppConfig
from app.settings import Settings
from app.state import AppState

AUTHENTICATORS_KEY = "app.auth.authenticators"
# The JwtVerifier, when JWTs are configured; tests replace `verifier.jwks.client` through it.
VERIFIER_KEY = "app.auth.jwt"


def configure(config: AppConfig, settings: Settings) -> AuthConfig:
    """Parse `[auth]`; static tokens are read from the environment now, so a missing one stops startup."""
    return parse_auth_config(config.raw, AuthSettings(), os.environ)


async def startup(state: AppState) -> None:
    auth: AuthConfig = state.extensions[__name__]
    state.extensions[METRICS_KEY] = AuthMetrics(state.registry)
    authenticators = state.extensions.setdefault(AUTHENTICATORS_KEY, [])
    if auth.static_tokens:
        authenticators.append(StaticTokenAuthenticator(auth.static_tokens))
    if auth.jwt is not None:
        client = httpx.AsyncClient(timeout=auth.jwt.timeout_seconds, follow_redirects=False)
        jwks = JwksCache(
            auth.jwt.jwks_url,
            client,
            state.clock,
            cache_seconds=auth.jwt.cache_seconds,
            min_refresh_seconds=auth.jwt.min_refresh_seconds,
        )
        verifier = JwtVerifier(auth.jwt, jwks, state.clock)
        state.extensions[VERIFIER_KEY] = verifier
        authenticators.append(JwtAuthenticator(verifier))


async def shutdown(state: AppState) -> None:
    verifier: JwtVerifier | None = state.extensions.pop(VERIFIER_KEY, None)
    if verifier is not None:
        await verifier.jwks.client.aclose()
