"""Environment settings of admin authentication (`HOOKLEDGER_AUTH_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthSettings(BaseSettings):
    """JWT verification settings; issuer, audience and JWKS URL override the `[auth]` table."""

    model_config = SettingsConfigDict(env_prefix="HOOKLEDGER_AUTH_", extra="ignore")

    issuer: str | None = Field(default=None, description="Token issuer, e.g. https://TENANT.auth0.com/.")
    audience: str | None = Field(default=None, description="API identifier that tokens must name in 'aud'.")
    jwks_url: str | None = Field(default=None, description="JWKS URL; default <issuer>.well-known/jwks.json.")
    jwks_cache_seconds: float = Field(default=600, gt=0, description="How long a fetched JWKS is used, in seconds.")
    jwks_min_refresh_seconds: float = Field(
        default=30, ge=0, description="Minimum seconds between two JWKS fetches caused by unknown key ids."
    )
    jwks_timeout_seconds: float = Field(default=5, gt=0, description="Timeout of one JWKS request, in seconds.")
    leeway_seconds: int = Field(default=60, ge=0, le=300, description="Clock skew allowed for exp, nbf and iat.")
