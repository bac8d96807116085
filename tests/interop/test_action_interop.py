"""The Auth0 Action, run under Node, pushes into a real `hookledger serve` process.

The module starts one server per backend (SQLite, then PostgreSQL) on a free
127.0.0.1 port with the repository's `hookledger.example.toml` and a fresh
secret. Each test runs `hooks_js/post-login.js` under Node against it for a
user id of its own, and reads that user's rows back through the ledger's model.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.db.migrate import upgrade
from app.db.models import Event
from app.demo import action
from tests.support.database import run_blocking
from tests.support.server import running_server

ROOT = Path(__file__).resolve().parents[2]
ACTION_JS = ROOT / "hooks_js" / "post-login.js"
EXAMPLE_CONFIG = ROOT / "hookledger.example.toml"
SAMPLE_EVENT = json.loads((ROOT / "tests" / "data" / "auth0" / "post-login-event.json").read_text())

NODE = shutil.which("node")
pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
]

# Reads {event, now_ms} on stdin. Without now_ms it calls the Action's entry
# point as Auth0 does, and with it the push uses that fixed send time. Writes
# {lines: the Action's console.log lines, denied: calls of api.access.deny}.
NODE_DRIVER = """
const action = require(process.env.HOOKLEDGER_ACTION_JS);
const lines = [];
console.log = (...args) => { lines.push(args.join(' ')); };
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const { event, now_ms: nowMs } = JSON.parse(input);
  const denied = [];
  const api = { access: { deny: (...args) => denied.push(args) } };
  if (nowMs === null) {
    await action.onExecutePostLogin(event, api);
  } else {
    await action.pushLoginEvent(event, { now: () => nowMs });
  }
  process.stdout.write(JSON.stringify({ lines, denied: denied.length }));
});
"""


def run_action(event: dict[str, Any], *, now_ms: int | None = None) -> str:
    """Run the Action under Node on `event`; return its single log line."""
    completed = subprocess.run(
        [NODE, "-e", NODE_DRIVER],
        input=json.dumps({"event": event, "now_ms": now_ms}),
        capture_output=True,
        text=True,
        env={"HOOKLEDGER_ACTION_JS": str(ACTION_JS), "PATH": os.environ.get("PATH", "")},
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["denied"] == 0
    assert len(result["lines"]) == 1, result["lines"]
    return result["lines"][0]


def stored_events(database_url: str, subject: str) -> list[Event]:
    """Return the ledger rows of `subject`, oldest first."""

    async def read() -> list[Event]:
        engine = create_async_engine(database_url)
        try:
            async with AsyncSession(engine) as session:
                query = select(Event).where(Event.subject == subject).order_by(Event.id)
                return list(await session.scalars(query))
        finally:
            await engine.dispose()

    return run_blocking(read)


@dataclass(frozen=True)
class Ledger:
    push_url: str
    secret: str
    database_url: str


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One `hookledger serve` per backend for this module, with the example config."""
    tmp_path = tmp_path_factory.mktemp(f"interop-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
        upgrade(database_url)
    else:
        database_url = request.getfixturevalue("postgres_database_url")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    config = tmp_path / "hookledger.toml"
    shutil.copyfile(EXAMPLE_CONFIG, config)
    env = {
        "HOOKLEDGER_DATABASE_URL": database_url,
        "HOOKLEDGER_DATA_DIR": str(tmp_path / "data"),
        "HOOKLEDGER_CONFIG": str(config),
        "HOOKLEDGER_AUTH0_SECRET": secret,
    }
    with running_server(env) as base_url:
        yield Ledger(f"{base_url}/v1/hooks/auth0", secret, database_url)


def configured(
    event: dict[str, Any], ledger: Ledger, *, secret: str | None = None
) -> dict[str, Any]:
    """Return a copy of `event` with the Action's secrets and a user id no other test uses."""
    configured_event = copy.deepcopy(event)
    configured_event["secrets"] = {
        "HOOKLEDGER_URL": ledger.push_url,
        "HOOKLEDGER_SECRET": secret or ledger.secret,
    }
    configured_event["user"]["user_id"] = f"auth0|{uuid.uuid4().hex}"
    return configured_event


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_login_stored_once(ledger: Ledger) -> None:
    event = configured(SAMPLE_EVENT, ledger)
    user_id = event["user"]["user_id"]
    expected_id = action.derive_webhook_id(event)
    before = datetime.now(UTC)

    first = run_action(event)

    after = datetime.now(UTC)
    assert first.startswith("hookledger push sent:"), first
    assert f"id={expected_id}" in first
    assert first.endswith("status=200 result=accepted")
    rows = stored_events(ledger.database_url, user_id)
    assert len(rows) == 1
    row = rows[0]
    assert row.source == "auth0"
    assert row.idempotency_key == expected_id
    assert row.event_type == "login"
    assert row.subject == user_id
    assert row.origin == "push"
    assert row.payload["data"]["transaction_id"] == "FAKEtxn_00000000000000000000001"
    assert row.occurred_at == parse_iso(row.payload["timestamp"])
    assert before.replace(microsecond=0) <= row.occurred_at <= after

    # The same login sent again, at the same send time, is byte-identical.
    sent_ms = int(row.occurred_at.timestamp() * 1000)
    second = run_action(event, now_ms=sent_ms)

    assert second.endswith("status=200 result=duplicate"), second
    assert f"id={expected_id}" in second
    assert len(stored_events(ledger.database_url, user_id)) == 1


def test_resend_with_new_body_conflicts(ledger: Ledger) -> None:
    """A later execution for the same login carries a new timestamp, so the ledger returns 409."""
    event = configured(SAMPLE_EVENT, ledger)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)

    first = run_action(event, now_ms=now_ms)
    later = run_action(event, now_ms=now_ms + 1500)

    assert first.endswith("result=accepted"), first
    assert "attempts=1 status=409" in later, later
    rows = stored_events(ledger.database_url, event["user"]["user_id"])
    assert len(rows) == 1
    assert rows[0].occurred_at == datetime.fromtimestamp(now_ms / 1000, UTC)


def flow_variants() -> dict[str, tuple[dict[str, Any], str]]:
    silent = copy.deepcopy(SAMPLE_EVENT)
    silent["transaction"]["prompt"] = ["none"]
    silent["transaction"]["id"] = "FAKEtxn_silent_0001"

    refresh = copy.deepcopy(SAMPLE_EVENT)
    del refresh["session"]
    refresh["transaction"] = {"protocol": "oauth2-refresh-token"}

    password = copy.deepcopy(SAMPLE_EVENT)
    del password["session"]
    password["transaction"] = {"protocol": "oauth2-password"}

    return {
        "silent": (silent, "silent_login"),
        "refresh": (refresh, "refresh"),
        "password": (password, "password_grant"),
    }


@pytest.mark.parametrize("variant", ["silent", "refresh", "password"])
def test_flow_kinds_stored(ledger: Ledger, variant: str) -> None:
    source_event, expected_type = flow_variants()[variant]
    event = configured(source_event, ledger)

    line = run_action(event)

    assert line.endswith("status=200 result=accepted"), line
    rows = stored_events(ledger.database_url, event["user"]["user_id"])
    assert len(rows) == 1
    assert rows[0].event_type == expected_type
    assert f"id={rows[0].idempotency_key}" in line
    assert rows[0].payload["data"]["kind"] == expected_type


def test_two_refreshes_stored_twice(ledger: Ledger) -> None:
    """Refresh exchanges have no per-login identity, so each gets its own random id."""
    refresh, _ = flow_variants()["refresh"]
    event = configured(refresh, ledger)

    run_action(event)
    run_action(event)

    rows = stored_events(ledger.database_url, event["user"]["user_id"])
    assert len(rows) == 2
    assert rows[0].idempotency_key != rows[1].idempotency_key


def test_wrong_secret_rejected(ledger: Ledger) -> None:
    other_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    event = configured(SAMPLE_EVENT, ledger, secret=other_secret)

    line = run_action(event)

    assert line.startswith("hookledger push failed:"), line
    assert "attempts=1 status=401" in line
    assert stored_events(ledger.database_url, event["user"]["user_id"]) == []
