"""Fixtures for the metrics API: a configuration with metrics, an admin token, and direct row inserts."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.db.models import Origin
from app.ingest.repository import EventRepository
from tests.support.app import FakeClock, config_from, running_app
from tests.support.signing import SECRET

ADMIN_TOKEN = "admin-" + "a" * 40
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENVIRON = {"ACME_SECRET": SECRET}

RAW_CONFIG: dict[str, Any] = {
    "sources": {"acme": {"scheme": "standard-webhooks", "secrets_env": ["ACME_SECRET"]}},
    "metrics_api": {"sources": ["billing"]},
    "metrics": {
        "logins": {
            "description": "Successful logins",
            "source": "acme",
            "event_types": ["login.success", "login.silent"],
            "by_subject": True,
        },
        "paid-invoices": {
            "description": "Paid invoices",
            "source": "acme",
            "event_types": ["invoice.paid"],
            "filters": [{"pointer": "/data/status", "equals": "paid"}],
        },
        "big-plans": {
            "source": "acme",
            "event_types": ["invoice.paid"],
            "filters": [{"pointer": "/data/plan", "in": ["pro", "team"]}, {"pointer": "/data/live", "equals": True}],
        },
        "usage": {"source": "billing", "event_types": ["usage"], "by_subject": True},
    },
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def row(
    key: str,
    occurred_at: str,
    *,
    event_type: str = "login.success",
    subject: str | None = "user_1",
    origin: str = Origin.PUSH,
    payload: Any = None,
    source: str = "acme",
) -> dict[str, Any]:
    """Build one ledger row as the ingest path would store it."""
    return {
        "source": source,
        "idempotency_key": key,
        "event_type": event_type,
        "subject": subject,
        "occurred_at": at(occurred_at),
        "received_at": at(occurred_at),
        "origin": origin,
        "payload": payload if payload is not None else {},
        "body_sha256": hashlib.sha256(key.encode()).hexdigest(),
    }


async def insert_rows(client: httpx.AsyncClient, rows: Iterable[dict[str, Any]]) -> None:
    database = client.app.state.hookledger.database  # type: ignore[attr-defined]
    async with database.transaction() as session:
        repository = EventRepository(session)
        for values in rows:
            assert await repository.insert_if_absent(values) is not None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(database_url: str, clock: FakeClock, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    config = config_from(RAW_CONFIG, ENVIRON)
    async with running_app(database_url, config, clock=clock, data_dir=tmp_path, admin_token=ADMIN_TOKEN) as http:
        yield http
