"""`hookledger serve` and `hookledger migrate` as a user runs them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.database import create_postgres_database, drop_postgres_database, skip_or_fail_without_postgres
from tests.support.server import HOOKLEDGER, running_server
from tests.support.signing import SECRET, standard_webhooks_headers

CONFIG = """
[sources.acme]
scheme = "standard-webhooks"
secrets_env = ["ACME_SECRET"]
subject_pointer = "/data/user_id"
"""


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKLEDGER), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_migrate_creates_sqlite_schema(tmp_path: Path):
    env = {"HOOKLEDGER_DATA_DIR": str(tmp_path / "data")}
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "migrated from empty" in first.stdout
    second = run_cli("migrate", env=env)
    assert second.returncode == 0
    assert "already at revision" in second.stdout
    tables = {row[0] for row in sqlite3.connect(tmp_path / "data" / "hookledger.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    )}
    assert {"events", "reconciliation_runs", "alembic_version"} <= tables


def test_serve_on_sqlite_accepts_a_signed_push(tmp_path: Path):
    config = tmp_path / "hookledger.toml"
    config.write_text(CONFIG)
    env = {"HOOKLEDGER_DATA_DIR": str(tmp_path / "data"), "HOOKLEDGER_CONFIG": str(config), "ACME_SECRET": SECRET}
    body = json.dumps({"type": "user.created", "data": {"user_id": "u1"}}).encode()
    with running_server(env) as base_url:
        headers = standard_webhooks_headers(SECRET, "msg_serve", int(time.time()), body)
        response = httpx.post(f"{base_url}/v1/hooks/acme", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        assert httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
    rows = sqlite3.connect(tmp_path / "data" / "hookledger.sqlite3").execute(
        "SELECT source, idempotency_key, subject FROM events"
    ).fetchall()
    assert rows == [("acme", "msg_serve", "u1")]


def test_serve_refuses_missing_secret(tmp_path: Path):
    config = tmp_path / "hookledger.toml"
    config.write_text(CONFIG)
    env = {"HOOKLEDGER_DATA_DIR": str(tmp_path / "data"), "HOOKLEDGER_CONFIG": str(config)}
    env_without_secret = {key: value for key, value in os.environ.items() if key != "ACME_SECRET"} | env
    result = subprocess.run(
        [str(HOOKLEDGER), "serve", "--port", "0"], env=env_without_secret, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "ACME_SECRET is not set" in result.stderr


@pytest.mark.postgres
def test_serve_refuses_outdated_postgres_schema(tmp_path: Path):
    admin_url = skip_or_fail_without_postgres()
    url = create_postgres_database(admin_url)
    try:
        env = {"HOOKLEDGER_DATABASE_URL": url, "HOOKLEDGER_DATA_DIR": str(tmp_path)}
        refused = run_cli("serve", "--port", "0", env=env)
        assert refused.returncode == 1
        assert "run 'hookledger migrate' first" in refused.stderr
        migrated = run_cli("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        assert "migrated from empty" in migrated.stdout
    finally:
        drop_postgres_database(admin_url, url)


def test_serve_reports_unreachable_database(tmp_path: Path):
    env = {"HOOKLEDGER_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none", "HOOKLEDGER_DATA_DIR": str(tmp_path)}
    result = run_cli("serve", "--port", "0", env=env)
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HOOKLEDGER_ADMIN_TOKEN", "short", "HOOKLEDGER_ADMIN_TOKEN contains 5 characters; use at least 32"),
        ("HOOKLEDGER_DATABASE_URL", "mysql://x", "HOOKLEDGER_DATABASE_URL uses 'mysql', which hookledger does not support"),
        ("HOOKLEDGER_DATABASE_URL", "garbage", "HOOKLEDGER_DATABASE_URL is not a database URL"),
        ("HOOKLEDGER_LOG_LEVEL", "verbose", "HOOKLEDGER_LOG_LEVEL must be one of debug, info"),
        ("HOOKLEDGER_MAX_BODY_BYTES", "abc", "HOOKLEDGER_MAX_BODY_BYTES Input should be a valid integer"),
    ],
    ids=["short-admin-token", "unsupported-database", "not-a-url", "unknown-log-level", "body-cap-not-integer"],
)
def test_invalid_environment_names_the_variable(tmp_path: Path, variable: str, value: str, message: str):
    result = run_cli("migrate", env={"HOOKLEDGER_DATA_DIR": str(tmp_path), variable: value})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_postgres_url_without_driver_uses_asyncpg():
    from app.settings import Settings

    settings = Settings(database_url="postgresql://postgres@127.0.0.1:5432/postgres")
    assert settings.resolved_database_url() == "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    assert Settings(database_url="sqlite:///x.sqlite3").resolved_database_url() == "sqlite+aiosqlite:///x.sqlite3"
