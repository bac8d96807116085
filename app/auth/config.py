"""The `[auth]` table: the JWT issuer and audience, and static tokens read from the environment.

    [auth]
    issuer = "https://TENANT.auth0.com/"
    audience = "https://hookledger.example/api"

    [auth.tokens.dashboard]
    token_env = "HOOKLEDGER_DASHBOARD_TOKEN"
    scopes = ["metrics:read"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from app.auth.dependencies import ALL_SCOPES
from app.auth.settings import AuthSettings
from app.config import ConfigError, describe_validation_error
from app.settings import MIN_ADMIN_TOKEN_LENGTH

TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Shorter static tokens are guessable; 32 characters is 128 bits of hex or more of base64.
MIN_STATIC_TOKEN_LENGTH = MIN_ADMIN_TOKEN_LENGTH


class _TokenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_env: StrictStr
    scopes: list[StrictStr] = Field(min_length=1)


class _AuthTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: StrictStr | None = None
    audience: StrictStr | None = None
    jwks_url: StrictStr | None = None
    tokens: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class JwtConfig:
    """Issuer, audience and JWKS settings of the accepted access tokens."""

    issuer: str
    audience: str
    jwks_url: str
    cache_seconds: float
    min_refresh_seconds: float
    timeout_seconds: float
    leeway_seconds: int


@dataclass(frozen=True)
class StaticToken:
    name: str
    token: bytes
    scopes: frozenset[str]


@dataclass(frozen=True)
class AuthConfig:
    jwt: JwtConfig | None
    static_tokens: tuple[StaticToken, ...]


def parse_auth_config(raw: Mapping[str, Any], settings: AuthSettings, environ: Mapping[str, str]) -> AuthConfig:
    """Validate `[auth]` with the environment settings; raise ConfigError naming the field or variable."""
    table_raw = raw.get("auth", {})
    if not isinstance(table_raw, dict):
        raise ConfigError("[auth] must be a table.")
    try:
        table = _AuthTable.model_validate(table_raw)
    except ValidationError as exc:
        raise ConfigError(f"[auth] {describe_validation_error(exc)}") from exc
    tokens = tuple(_parse_static_token(name, body, environ) for name, body in sorted(table.tokens.items()))
    return AuthConfig(jwt=_parse_jwt(table, settings), static_tokens=tokens)


def normalize_issuer(issuer: str) -> str:
    """Return the issuer with exactly one trailing slash, as Auth0 writes `iss`."""
    return issuer.rstrip("/") + "/"


def _parse_jwt(table: _AuthTable, settings: AuthSettings) -> JwtConfig | None:
    issuer = settings.issuer or table.issuer
    audience = settings.audience or table.audience
    jwks_url = settings.jwks_url or table.jwks_url
    if not issuer and not audience:
        if jwks_url:
            raise ConfigError("[auth] jwks_url is set without issuer and audience; set both to accept JWTs.")
        return None
    if not issuer or not audience:
        missing = "issuer (HOOKLEDGER_AUTH_ISSUER)" if not issuer else "audience (HOOKLEDGER_AUTH_AUDIENCE)"
        raise ConfigError(f"[auth] {missing} is missing; JWT verification needs both issuer and audience.")
    _check_https_url("issuer", issuer)
    issuer = normalize_issuer(issuer)
    jwks_url = jwks_url or f"{issuer}.well-known/jwks.json"
    _check_https_url("jwks_url", jwks_url)
    return JwtConfig(
        issuer=issuer,
        audience=audience,
        jwks_url=jwks_url,
        cache_seconds=settings.jwks_cache_seconds,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
        timeout_seconds=settings.jwks_timeout_seconds,
        leeway_seconds=settings.leeway_seconds,
    )


def _check_https_url(field: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError(f"[auth] {field} {value!r} is invalid: it must be an https:// URL.")


def _parse_static_token(name: str, body: Any, environ: Mapping[str, str]) -> StaticToken:
    if not TOKEN_NAME.match(name):
        raise ConfigError(
            f"[auth.tokens] name {name!r} is invalid: use 1-64 lower-case letters, digits, '-' or '_'."
        )
    if not isinstance(body, dict):
        raise ConfigError(f"[auth.tokens.{name}] must be a table with token_env and scopes.")
    try:
        settings = _TokenSettings.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(f"[auth.tokens.{name}] {describe_validation_error(exc)}") from exc
    unknown = sorted(set(settings.scopes) - ALL_SCOPES)
    if unknown:
        raise ConfigError(
            f"[auth.tokens.{name}] scopes: {', '.join(unknown)} unknown; known scopes: {', '.join(sorted(ALL_SCOPES))}."
        )
    value = environ.get(settings.token_env)
    if value is None:
        raise ConfigError(
            f"[auth.tokens.{name}] token variable {settings.token_env} is not set; export it before starting hookledger."
        )
    value = value.strip()
    if not value:
        raise ConfigError(f"[auth.tokens.{name}] token variable {settings.token_env} is empty; set it to a random token.")
    if len(value) < MIN_STATIC_TOKEN_LENGTH:
        raise ConfigError(
            f"[auth.tokens.{name}] token variable {settings.token_env} contains {len(value)} characters; use at least "
            f"{MIN_STATIC_TOKEN_LENGTH} random characters (for example: openssl rand -hex 32)."
        )
    return StaticToken(name=name, token=value.encode(), scopes=frozenset(settings.scopes))
