"""`[sources.NAME.reconciliation]` validation: defaults, overrides and errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.config import ConfigError, parse_config
from app.reconciliation.config import parse_duration, parse_reconciliation_config
from tests.support.signing import SECRET

ENVIRON = {"AUTH0_PUSH_SECRET": SECRET}


def config_with(table: dict | None, **raw_extra) -> object:
    source = {"scheme": "standard-webhooks", "secrets_env": ["AUTH0_PUSH_SECRET"]}
    if table is not None:
        source["reconciliation"] = table
    return parse_config({"sources": {"auth0": source, "acme": dict(source, reconciliation=None)}} | raw_extra, ENVIRON)


def test_defaults(tmp_path: Path):
    parsed = parse_reconciliation_config(config_with({"mapping": "auth0", "local_root": str(tmp_path)}))

    settings = parsed.sources["auth0"]
    assert settings.strategy == "match"
    assert settings.window == timedelta(days=1)
    assert settings.settle_lag == timedelta(hours=1)
    assert settings.lag_margin == timedelta(hours=1)
    assert settings.tolerance == timedelta(seconds=120)
    assert settings.trust_transaction_id is True
    assert settings.hint_pointers.transaction_id == "/data/transaction_id"
    assert settings.hint_pointers.session_id == "/data/session_id"
    assert settings.hint_pointers.client_id == "/data/client_id"
    assert settings.mapping.local_root == tmp_path
    assert "acme" not in parsed.sources


def test_overrides(tmp_path: Path):
    table = {
        "mapping": "auth0",
        "local_root": str(tmp_path),
        "strategy": "key",
        "window": "1h",
        "settle_lag": "30m",
        "lag_margin": 7200,
        "tolerance_seconds": 30,
        "hint_pointers": {"session_id": "", "client_id": "/client/id"},
    }
    settings = parse_reconciliation_config(config_with(table)).sources["auth0"]

    assert settings.strategy == "key"
    assert settings.window == timedelta(hours=1)
    assert settings.settle_lag == timedelta(minutes=30)
    assert settings.lag_margin == timedelta(hours=2)
    assert settings.tolerance == timedelta(seconds=30)
    assert settings.hint_pointers.session_id is None
    assert settings.hint_pointers.client_id == "/client/id"


def test_mapping_defaults_to_source_name(tmp_path: Path):
    settings = parse_reconciliation_config(config_with({"local_root": str(tmp_path)})).sources["auth0"]
    assert settings.mapping.name == "auth0"


def test_relative_local_root_is_resolved_against_config_file(tmp_path: Path):
    config = config_with({"local_root": "logs"})
    config = type(config)(sources=config.sources, raw=config.raw, path=tmp_path / "hookledger.toml")
    settings = parse_reconciliation_config(config).sources["auth0"]
    assert settings.mapping.local_root == tmp_path / "logs"


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"mapping": "nope", "local_root": "/x"}, "mapping: no log mapping is named 'nope'"),
        ({"mapping": "auth0"}, "local_root"),
        ({"mapping": "auth0", "local_root": "/x", "window": "2h"}, "window"),
        ({"mapping": "auth0", "local_root": "/x", "strategy": "fuzzy"}, "strategy"),
        ({"mapping": "auth0", "local_root": "/x", "settle_lag": "soon"}, "settle_lag"),
        ({"mapping": "auth0", "local_root": "/x", "tolerance_seconds": 0}, "tolerance_seconds"),
        ({"mapping": "auth0", "local_root": "/x", "hint_pointers": {"session_id": "data"}}, "hint_pointers.session_id"),
        ({"mapping": "auth0", "local_root": "/x", "colour": "blue"}, "colour"),
        ({"mapping": "auth0", "local_root": "/x", "settle_lag": "99999999d"}, "longer than 30 days"),
        ({"mapping": "auth0", "local_root": "/x", "lag_margin": "31d"}, "lag_margin"),
    ],
    ids=[
        "unknown-mapping",
        "no-local-root",
        "window",
        "strategy",
        "duration",
        "tolerance",
        "pointer",
        "unknown-key",
        "settle-lag-too-long",
        "lag-margin-too-long",
    ],
)
def test_errors_name_source_and_key(table, fragment):
    with pytest.raises(ConfigError) as raised:
        parse_reconciliation_config(config_with(table))
    message = str(raised.value)
    assert "[sources.auth0.reconciliation]" in message
    assert fragment in message


def test_athena_engine_needs_no_local_root():
    settings = parse_reconciliation_config(config_with({"mapping": "auth0", "engine": "athena"})).sources["auth0"]
    assert settings.mapping.engine == "athena"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)), ("2d", timedelta(days=2)), (30, timedelta(seconds=30))],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1w", "h", "-5m", "", True, -1])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
