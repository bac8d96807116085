"""Parsing `[auth]`: JWT settings from the file or the environment, and static tokens."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.config import parse_auth_config
from app.auth.settings import AuthSettings
from app.config import ConfigError

TOKEN = "t" * 40


def parse(auth: Any, environ: dict[str, str] | None = None, **settings: Any):
    return parse_auth_config({"auth": auth}, AuthSettings(**settings), environ or {})


def test_empty_auth_means_no_jwt_and_no_tokens():
    config = parse({})
    assert config.jwt is None
    assert config.static_tokens == ()


@pytest.mark.parametrize("issuer", ["https://tenant.auth0.com/", "https://tenant.auth0.com"])
def test_issuer_is_normalized_with_trailing_slash(issuer):
    config = parse({"issuer": issuer, "audience": "api"})
    assert config.jwt is not None
    assert config.jwt.issuer == "https://tenant.auth0.com/"
    assert config.jwt.jwks_url == "https://tenant.auth0.com/.well-known/jwks.json"
    assert config.jwt.leeway_seconds == 60


def test_environment_overrides_file():
    config = parse(
        {"issuer": "https://file.auth0.com/", "audience": "file-api"},
        issuer="https://env.auth0.com",
        audience="env-api",
        jwks_url="https://keys.example/jwks.json",
    )
    assert config.jwt is not None
    assert (config.jwt.issuer, config.jwt.audience) == ("https://env.auth0.com/", "env-api")
    assert config.jwt.jwks_url == "https://keys.example/jwks.json"


@pytest.mark.parametrize(
    ("auth", "fragment"),
    [
        ({"issuer": "https://tenant.auth0.com/"}, "audience (HOOKLEDGER_AUTH_AUDIENCE) is missing"),
        ({"audience": "api"}, "issuer (HOOKLEDGER_AUTH_ISSUER) is missing"),
        ({"issuer": "http://tenant.auth0.com/", "audience": "api"}, "issuer 'http://tenant.auth0.com/' is invalid"),
        ({"issuer": "https://t.auth0.com/", "audience": "api", "jwks_url": "ftp://x/"}, "jwks_url"),
        ({"jwks_url": "https://x/jwks.json"}, "jwks_url is set without issuer"),
        ({"issuer": "https://t.auth0.com/", "audience": "api", "algorithms": ["HS256"]}, "algorithms: unknown key"),
        ("yes", "[auth] must be a table"),
    ],
)
def test_invalid_jwt_settings(auth, fragment):
    with pytest.raises(ConfigError) as caught:
        parse(auth)
    assert fragment in str(caught.value)


def test_static_tokens_read_from_environment():
    auth = {
        "tokens": {
            "dashboard": {"token_env": "DASH_TOKEN", "scopes": ["metrics:read"]},
            "ops": {"token_env": "OPS_TOKEN", "scopes": ["metrics:read", "reconcile:run"]},
        }
    }
    config = parse(auth, {"DASH_TOKEN": f"  {TOKEN}\n", "OPS_TOKEN": "o" * 40})
    tokens = {token.name: token for token in config.static_tokens}
    assert tokens["dashboard"].token == TOKEN.encode()
    assert tokens["dashboard"].scopes == frozenset({"metrics:read"})
    assert tokens["ops"].scopes == frozenset({"metrics:read", "reconcile:run"})


@pytest.mark.parametrize(
    ("token", "environ", "fragment"),
    [
        ({"token_env": "DASH_TOKEN", "scopes": ["metrics:read"]}, {}, "DASH_TOKEN is not set"),
        ({"token_env": "DASH_TOKEN", "scopes": ["metrics:read"]}, {"DASH_TOKEN": "  "}, "DASH_TOKEN is empty"),
        ({"token_env": "DASH_TOKEN", "scopes": ["metrics:read"]}, {"DASH_TOKEN": "short"}, "at least 32"),
        ({"token_env": "DASH_TOKEN", "scopes": ["metrics:delete"]}, {"DASH_TOKEN": TOKEN}, "metrics:delete unknown"),
        ({"token_env": "DASH_TOKEN", "scopes": []}, {"DASH_TOKEN": TOKEN}, "scopes"),
        ({"token": TOKEN, "scopes": ["metrics:read"]}, {}, "token: unknown key"),
    ],
)
def test_invalid_static_token(token, environ, fragment):
    with pytest.raises(ConfigError) as caught:
        parse({"tokens": {"dashboard": token}}, environ)
    message = str(caught.value)
    assert "[auth.tokens.dashboard]" in message
    assert fragment in message
