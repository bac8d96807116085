"""Admin authentication: bearer tokens with scopes, as FastAPI dependencies.

Scopes: `metrics:read`, `metrics:write`, `reconcile:run`. A missing or invalid
token is a 401 with `WWW-Authenticate`; a valid token without the scope is a 403.
Each rejection is counted in `hookledger_auth_failures` by reason when the
`app.auth` extension is loaded.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from app.errors import AuthenticationError, ForbiddenError
from app.state import AppState

ALL_SCOPES = frozenset({"metrics:read", "metrics:write", "reconcile:run"})


@dataclass(frozen=True)
class Principal:
    """The caller of an admin request and the scopes it holds."""

    subject: str
    scopes: frozenset[str]
    method: str  # "static" or "jwt"


def bearer_token(request: Request) -> str:
    """Return the bearer token of the request; raise 401 when it is missing or malformed."""
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationError(
            "The request has no Authorization header; send 'Authorization: Bearer <token>'.",
            code="missing_token",
            headers={"WWW-Authenticate": 'Bearer realm="hookledger"'},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "The Authorization header is not a bearer token; send 'Authorization: Bearer <token>'.",
            code="invalid_token",
            headers={"WWW-Authenticate": 'Bearer realm="hookledger", error="invalid_request"'},
            reason="malformed_header",
        )
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """Resolve the request's bearer token to a principal.

    The static `HOOKLEDGER_ADMIN_TOKEN` grants every scope. Other token kinds
    register an authenticator in `state.extensions["app.auth.authenticators"]`,
    a list of callables `(token, state) -> Principal | None`.
    """
    state: AppState = request.app.state.hookledger
    try:
        return await _resolve_principal(request, state)
    except AuthenticationError as exc:
        _count_failure(state, str(exc.extra.get("reason") or exc.code))
        raise


async def _resolve_principal(request: Request, state: AppState) -> Principal:
    token = bearer_token(request)
    admin = state.settings.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return Principal(subject="admin-token", scopes=ALL_SCOPES, method="static")
    authenticators: list[Callable[[str, AppState], Awaitable[Principal | None]]] = state.extensions.get(
        "app.auth.authenticators", []
    )
    for authenticator in authenticators:
        principal = await authenticator(token, state)
        if principal is not None:
            return principal
    raise AuthenticationError(
        "The bearer token is not valid for this service; send a current token issued for it.",
        code="invalid_token",
        headers={"WWW-Authenticate": 'Bearer realm="hookledger", error="invalid_token"'},
        reason="unknown_token",
    )


def _count_failure(state: AppState, reason: str) -> None:
    metrics = state.extensions.get("app.auth.metrics")
    if metrics is not None:
        metrics.auth_failures.labels(reason).inc()


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """Return a dependency that authenticates the request and checks `scope`."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if scope not in principal.scopes:
            _count_failure(request.app.state.hookledger, "insufficient_scope")
            raise ForbiddenError(
                f"The token lacks the scope {scope!r} (it has: {', '.join(sorted(principal.scopes)) or 'none'}); "
                "request a token with that scope.",
                code="insufficient_scope",
                headers={"WWW-Authenticate": f'Bearer realm="hookledger", error="insufficient_scope", scope="{scope}"'},
            )
        return principal

    return dependency
