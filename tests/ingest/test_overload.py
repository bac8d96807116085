"""Admission limits of the hook route: a full or slow queue returns 503 with Retry-After and stores nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from app.db.engine import Database, create_engine
from app.db.models import Event
from app.ingest.batcher import IngestBatcher, IngestOverloadedError
from app.ingest.extract import ExtractedEvent
from app.ingest.loop_lag import LoopLagMonitor
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
        database_url,
        config,
        clock=FakeClock(NOW),
        data_dir=tmp_path,
        ingest_max_pending=3,
        ingest_max_queue_delay_ms=200,
        retry_after_seconds=4,
    ) as http:
        yield http


class FakeLag:
    """A settable event loop lag in seconds, in place of the sampling task."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


class FakeMonotonic:
    """A settable monotonic clock in seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(small_client) -> FakeMonotonic:
    fake = FakeMonotonic()
    small_client.app.state.hookledger.extensions[BATCHER_KEY].clock = fake
    return fake


@pytest.fixture
def lag(small_client, monotonic) -> FakeLag:
    fake = FakeLag()
    small_client.app.state.hookledger.extensions[BATCHER_KEY].loop_lag = fake
    return fake


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


def assert_overloaded(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "4"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "ingest_overloaded"


async def post(client: httpx.AsyncClient, msg_id: str) -> httpx.Response:
    body, headers = delivery(msg_id)
    return await client.post("/v1/hooks/acme", content=body, headers=headers)


async def test_sustained_lag_answers_503(small_client, lag, monotonic):
    lag.seconds = 0.25
    first = await post(small_client, "msg_first_late")
    monotonic.now += 0.1
    refused = await post(small_client, "msg_lagging")

    assert first.status_code == 200
    assert_overloaded(refused)
    assert "250 ms" in refused.json()["detail"]
    assert "200 ms" in refused.json()["detail"]
    assert await stored_keys(small_client) == {"msg_first_late"}


async def test_brief_lag_spike_passes(small_client, lag, monotonic):
    """Lag above the target for less than the hold, or interrupted by a low sample, rejects nothing."""
    statuses = []
    lag.seconds = 0.25
    statuses.append((await post(small_client, "msg_spike_1")).status_code)
    monotonic.now += 0.05
    statuses.append((await post(small_client, "msg_spike_2")).status_code)
    lag.seconds = 0.0
    statuses.append((await post(small_client, "msg_calm")).status_code)
    lag.seconds = 0.25
    monotonic.now += 0.06
    statuses.append((await post(small_client, "msg_spike_3")).status_code)

    assert statuses == [200, 200, 200, 200]
    assert await stored_keys(small_client) == {"msg_spike_1", "msg_spike_2", "msg_calm", "msg_spike_3"}


async def test_loop_lag_below_target_passes(small_client, lag, monotonic):
    lag.seconds = 0.15
    first = await post(small_client, "msg_on_time")
    monotonic.now += 1.0
    second = await post(small_client, "msg_still_on_time")

    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json()["status"] == "accepted"
    assert await stored_keys(small_client) == {"msg_on_time", "msg_still_on_time"}


async def test_overload_refuses_before_reading_body(small_client, lag, monotonic):
    """A rejected delivery is not read: a bad signature or an oversized body still gets the 503."""
    batcher: IngestBatcher = small_client.app.state.hookledger.extensions[BATCHER_KEY]
    lag.seconds = 1.0
    with batcher.admission():
        pass
    monotonic.now += 0.1
    body, headers = delivery("msg_unread")
    forged = await small_client.post("/v1/hooks/acme", content=body + b" ", headers=headers)
    oversized = await small_client.post("/v1/hooks/acme", content=b"x" * (2 << 20), headers=headers)

    assert_overloaded(forged)
    assert_overloaded(oversized)
    lag.seconds = 0.0
    assert (await small_client.post("/v1/hooks/acme", content=body + b" ", headers=headers)).status_code == 401
    assert await stored_keys(small_client) == set()


async def test_recovery_when_lag_drops(small_client, lag, monotonic):
    batcher: IngestBatcher = small_client.app.state.hookledger.extensions[BATCHER_KEY]
    lag.seconds = 0.4
    with batcher.admission():
        pass
    monotonic.now += 0.2
    first = await post(small_client, "msg_recovered")
    lag.seconds = 0.01
    second = await post(small_client, "msg_recovered")

    assert_overloaded(first)
    assert second.status_code == 200
    assert second.json()["status"] == "accepted"
    assert await stored_keys(small_client) == {"msg_recovered"}
    assert batcher.rejected == 1


def store_task(batcher: IngestBatcher, key: str) -> asyncio.Task:
    event = ExtractedEvent(idempotency_key=key, event_type="t", subject=None, occurred_at=NOW)
    return asyncio.create_task(
        batcher.store(source="acme", event=event, payload={}, body_hash="a" * 64, origin="push", received_at=NOW)
    )


async def test_queue_age_past_target_refuses_and_queued_complete(database_url, tmp_path):
    database = Database(create_engine(Settings(database_url=database_url, data_dir=tmp_path)))
    clock = FakeMonotonic()
    batcher = IngestBatcher(database, flushers=1, max_queue_delay=0.2, clock=clock)
    batcher.start()
    try:
        tasks = [store_task(batcher, f"queued_{index}") for index in range(3)]
        await asyncio.sleep(0)  # the tasks queue their events; the flusher has not run yet
        clock.now += 0.1
        within_target = batcher.queue_delay()
        with batcher.admission():
            pass
        clock.now += 0.15
        late = batcher.queue_delay()
        # The first admission over the target starts the hold; the next one after it is rejected.
        with batcher.admission():
            pass
        clock.now += 0.1
        with pytest.raises(IngestOverloadedError) as raised:
            with batcher.admission():
                pass
        outcomes = await asyncio.gather(*tasks)
        drained = batcher.queue_delay()
        with batcher.admission():
            pass
        async with database.transaction() as session:
            keys = set((await session.execute(select(Event.idempotency_key))).scalars())
    finally:
        await batcher.close()
        await database.dispose()

    assert within_target == pytest.approx(0.1)
    assert late == pytest.approx(0.25)
    assert "350 ms" in raised.value.detail
    assert raised.value.code == "ingest_overloaded"
    assert raised.value.headers["Retry-After"] == "5"
    assert [outcome.status for outcome in outcomes] == ["accepted"] * 3
    assert keys == {"queued_0", "queued_1", "queued_2"}
    assert drained == 0.0


async def test_commit_latency_counts_only_while_queued(database_url, tmp_path):
    """The commit average adds to the queue delay, but an empty queue never refuses, so refusals end."""
    database = Database(create_engine(Settings(database_url=database_url, data_dir=tmp_path)))
    ticks = iter(range(10_000))
    batcher = IngestBatcher(database, flushers=1, max_queue_delay=0.2, clock=lambda: float(next(ticks)))
    batcher.start()
    try:
        await store_task(batcher, "timed")
        commit_seconds = batcher.commit_seconds
        empty_delay = batcher.queue_delay()
        with batcher.admission():
            pass
    finally:
        await batcher.close()
        await database.dispose()

    # Each clock reading is one second later, so the batch took at least one second.
    assert commit_seconds >= 0.2
    assert empty_delay == 0.0


def test_loop_lag_returns_latest_sample():
    monitor = LoopLagMonitor()
    assert monitor.lag() == 0.0
    monitor.record(0.5)
    assert monitor.lag() == 0.5
    monitor.record(0.002)
    assert monitor.lag() == 0.002
    monitor.record(-0.001)
    assert monitor.lag() == 0.0
    assert monitor.samples_taken == 3


async def test_blocked_loop_shows_as_lag():
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    try:
        while monitor.samples_taken == 0:
            await asyncio.sleep(0.001)
        taken = monitor.samples_taken
        # The monitor is inside its 10 ms sleep now; blocking the loop makes that timer late.
        time.sleep(0.3)
        while monitor.samples_taken == taken:
            await asyncio.sleep(0)
        lag = monitor.lag()
    finally:
        await monitor.stop()

    assert lag >= 0.25
