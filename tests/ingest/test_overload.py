"""Admission limits of the hook route: a full queue answers 503 with Retry-After and stores nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from app.db.engine import Database, create_engine
from app.db.models import Event
from app.ingest.batcher import IngestBatcher, IngestOverloadedError
from app.ingest.extract import ExtractedEvent
from app.ingest.routes import BATCHER_KEY
from app.settings import Settings
from tests.ingest.conftest import ACME_SOURCE, ENVIRON
from tests.support.app import FakeClock, config_from, running_app
from tests.support.signing import SECRET, standard_webhooks_headers

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def small_client(database_url: str, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    config = config_from({"sources": {"acme": dict(ACME_SOURCE)}}, ENVIRON)
    async with running_app(
        database_url, config, clock=FakeClock(NOW), data_dir=tmp_path, ingest_max_pending=3, retry_after_seconds=4
    ) as http:
        yield http


def delivery(msg_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "invoice.paid", "data": {"user_id": "user_1"}, "n": msg_id}).encode()
    return body, standard_webhooks_headers(SECRET, msg_id, int(NOW.timestamp()), body)


async def stored_keys(client: httpx.AsyncClient) -> set[str]:
    database = client.app.state.hookledger.database  # type: ignore[attr-defined]
    async with database.transaction() as session:
        return set((await session.execute(select(Event.idempotency_key))).scalars())


async def test_full_admission_answers_503(small_client):
    batcher: IngestBatcher = small_client.app.state.hookledger.extensions[BATCHER_KEY]
    body, headers = delivery("msg_refused")
    with batcher.admission(), batcher.admission(), batcher.admission():
        refused = await small_client.post("/v1/hooks/acme", content=body, headers=headers)

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "4"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "ingest_overloaded"
    assert await stored_keys(small_client) == set()

    retried = await small_client.post("/v1/hooks/acme", content=body, headers=headers)
    assert retried.status_code == 200
    assert await stored_keys(small_client) == {"msg_refused"}


async def test_overload_is_counted_in_prometheus(small_client):
    batcher: IngestBatcher = small_client.app.state.hookledger.extensions[BATCHER_KEY]
    body, headers = delivery("msg_counted")
    with batcher.admission(), batcher.admission(), batcher.admission():
        await small_client.post("/v1/hooks/acme", content=body, headers=headers)

    text = (await small_client.get("/metrics")).text
    assert 'hookledger_deliveries_total{outcome="ingest_overloaded",source="acme"} 1.0' in text


async def test_burst_stores_exactly_the_2xx(small_client):
    deliveries = [delivery(f"msg_{index}") for index in range(40)]
    responses = await asyncio.gather(
        *(small_client.post("/v1/hooks/acme", content=body, headers=headers) for body, headers in deliveries)
    )

    accepted = {f"msg_{index}" for index, response in enumerate(responses) if response.status_code == 200}
    refused = [response for response in responses if response.status_code != 200]
    assert accepted
    assert refused
    for response in refused:
        assert response.status_code == 503
        assert response.json()["code"] == "ingest_overloaded"
        assert response.headers["retry-after"] == "4"
    assert await stored_keys(small_client) == accepted


async def test_full_queue_refuses_store(database_url, tmp_path):
    database = Database(create_engine(Settings(database_url=database_url, data_dir=tmp_path)))
    batcher = IngestBatcher(database, max_pending=2, flushers=1)
    batcher.start()

    def store(key: str) -> asyncio.Task:
        event = ExtractedEvent(idempotency_key=key, event_type="t", subject=None, occurred_at=NOW)
        return asyncio.create_task(
            batcher.store(source="acme", event=event, payload={}, body_hash="a" * 64, origin="push", received_at=NOW)
        )

    try:
        # The three tasks run before the flusher, so the third finds two events queued.
        outcomes = await asyncio.gather(store("k1"), store("k2"), store("k3"), return_exceptions=True)
        async with database.transaction() as session:
            keys = set((await session.execute(select(Event.idempotency_key))).scalars())
    finally:
        await batcher.close()
        await database.dispose()

    assert [outcome.status for outcome in outcomes[:2]] == ["accepted", "accepted"]
    assert isinstance(outcomes[2], IngestOverloadedError)
    assert outcomes[2].headers["Retry-After"] == "5"
    assert keys == {"k1", "k2"}
