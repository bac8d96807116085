"""The group-commit batcher on SQLite and PostgreSQL: classification, fallback, outage, shutdown, JSON payloads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.db.engine import Database, create_engine, dump_json, load_json
from app.db.models import Event, Origin
from app.errors import StorageUnavailableError
from app.ingest.batcher import IngestBatcher
from app.ingest.extract import ExtractedEvent
from app.ingest.repository import EventRepository
from app.ingest.service import IdempotencyConflictError, IngestResult
from app.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make_database(url: str, tmp_path: Path) -> Database:
    return Database(create_engine(Settings(database_url=url, data_dir=tmp_path)))


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    db = make_database(database_url, tmp_path)
    yield db
    await db.dispose()


@pytest.fixture
async def batcher(database: Database) -> AsyncIterator[IngestBatcher]:
    flushers = 1 if database.dialect == "sqlite" else 2
    instance = IngestBatcher(database, max_batch_rows=64, max_pending=256, flushers=flushers)
    instance.start()
    yield instance
    await instance.close()


def store(
    batcher: IngestBatcher,
    key: str,
    body_hash: str = "a" * 64,
    *,
    payload: Any = None,
    source: str = "acme",
    origin: str = Origin.PUSH,
) -> asyncio.Task[IngestResult]:
    event = ExtractedEvent(idempotency_key=key, event_type="invoice.paid", subject="user_1", occurred_at=NOW)
    return asyncio.create_task(
        batcher.store(
            source=source,
            event=event,
            payload=payload if payload is not None else {"key": key},
            body_hash=body_hash,
            origin=origin,
            received_at=NOW,
        )
    )


async def stored_rows(database: Database) -> list[Event]:
    async with database.transaction() as session:
        return list((await session.execute(select(Event).order_by(Event.id))).scalars())


async def test_concurrent_events_share_a_batch(batcher, database):
    tasks = [store(batcher, f"evt_{index}") for index in range(20)]
    results = await asyncio.gather(*tasks)

    assert [result.status for result in results] == ["accepted"] * 20
    rows = await stored_rows(database)
    assert sorted(row.idempotency_key for row in rows) == sorted(f"evt_{index}" for index in range(20))
    assert {result.event_id for result in results} == {row.id for row in rows}
    assert batcher.rows_flushed == 20
    assert batcher.batches_flushed < 20


async def test_same_key_twice_in_one_batch(batcher, database):
    first = store(batcher, "evt_twice", "a" * 64)
    replay = store(batcher, "evt_twice", "a" * 64)
    changed = store(batcher, "evt_twice", "b" * 64)
    outcomes = await asyncio.gather(first, replay, changed, return_exceptions=True)

    assert outcomes[0].status == "accepted"
    assert outcomes[1] == IngestResult("duplicate", outcomes[0].event_id)
    assert isinstance(outcomes[2], IdempotencyConflictError)
    assert outcomes[2].extra["event_id"] == outcomes[0].event_id
    rows = await stored_rows(database)
    assert len(rows) == 1
    assert rows[0].body_sha256 == "a" * 64


async def test_existing_keys_are_duplicates_or_conflicts(batcher, database):
    stored = await store(batcher, "evt_old", "a" * 64)
    await store(batcher, "evt_logged", "c" * 64, origin=Origin.RECONCILIATION)

    outcomes = await asyncio.gather(
        store(batcher, "evt_old", "a" * 64),
        store(batcher, "evt_old", "b" * 64),
        store(batcher, "evt_logged", "d" * 64),
        store(batcher, "evt_new", "e" * 64),
        return_exceptions=True,
    )

    assert outcomes[0] == IngestResult("duplicate", stored.event_id)
    assert isinstance(outcomes[1], IdempotencyConflictError)
    assert outcomes[2].status == "duplicate"
    assert outcomes[3].status == "accepted"
    assert len(await stored_rows(database)) == 3


async def test_other_sources_keep_their_own_keys(batcher, database):
    outcomes = await asyncio.gather(store(batcher, "evt_1", source="acme"), store(batcher, "evt_1", source="globex"))

    assert [outcome.status for outcome in outcomes] == ["accepted", "accepted"]
    assert sorted(row.source for row in await stored_rows(database)) == ["acme", "globex"]


async def test_bad_row_fails_alone(batcher, database):
    good = [store(batcher, f"evt_good_{index}") for index in range(5)]
    # A set is not JSON, so this row cannot be stored; the batch falls back to one insert per row.
    bad = store(batcher, "evt_bad", payload={"values": {1, 2}})
    outcomes = await asyncio.gather(*good, bad, return_exceptions=True)

    assert [outcome.status for outcome in outcomes[:5]] == ["accepted"] * 5
    assert isinstance(outcomes[5], Exception)
    assert not isinstance(outcomes[5], StorageUnavailableError)
    keys = sorted(row.idempotency_key for row in await stored_rows(database))
    assert keys == [f"evt_good_{index}" for index in range(5)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_outage_fails_every_waiter_with_503(backend, tmp_path):
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'ledger.sqlite3'}"
        settings = Settings(database_url=url, data_dir=tmp_path / "data")
    else:
        # Nothing listens on port 9 of the loopback interface.
        url = "postgresql+asyncpg://postgres@127.0.0.1:9/none"
        settings = Settings(database_url=url, data_dir=tmp_path, db_connect_timeout_seconds=2)
    database = Database(create_engine(settings, url))
    batcher = IngestBatcher(database, flushers=1, retry_after_seconds=7)
    batcher.start()
    try:
        outcomes = await asyncio.gather(*(store(batcher, f"evt_{index}") for index in range(5)), return_exceptions=True)
    finally:
        await batcher.close()
        await database.dispose()

    assert len(outcomes) == 5
    for outcome in outcomes:
        assert isinstance(outcome, StorageUnavailableError)
        assert outcome.code == "storage_unavailable"
        assert outcome.headers["Retry-After"] == "7"


async def test_close_flushes_queued_events(database):
    batcher = IngestBatcher(database, flushers=1)
    batcher.start()
    tasks = [store(batcher, f"evt_{index}") for index in range(10)]
    await asyncio.sleep(0)  # the tasks queue their events; the flusher has not run yet
    await batcher.close()

    results = await asyncio.gather(*tasks)
    assert [result.status for result in results] == ["accepted"] * 10
    assert len(await stored_rows(database)) == 10


async def test_store_after_close_is_503(database):
    batcher = IngestBatcher(database, flushers=1)
    batcher.start()
    await batcher.close()

    with pytest.raises(StorageUnavailableError) as raised:
        await store(batcher, "evt_late")
    assert raised.value.code == "shutting_down"
    assert "Retry-After" in raised.value.headers
    assert await stored_rows(database) == []


# Values that a JSON column must return unchanged: non-ASCII text, escapes, integers at the edges
# of the 64-bit range, floats, and nesting.
ROUND_TRIP_PAYLOAD: dict[str, Any] = {
    "name": "Zoë Ålesund 東京 😀",
    "separators": "line\u2028paragraph\u2029",
    "escapes": 'quote " backslash \\ tab \t newline \n',
    "max_signed": 2**63 - 1,
    "min_signed": -(2**63),
    "max_unsigned": 2**64 - 1,
    "float": 0.1,
    "exponent": 1.5e300,
    "nested": {"list": [1, [2, {"deep": None}]], "flag": True, "empty_list": [], "empty_object": {}},
}


def test_engine_uses_orjson_functions(database):
    assert database.engine.dialect._json_serializer is dump_json
    assert database.engine.dialect._json_deserializer is load_json


async def test_payload_round_trips_through_batch_insert(batcher, database):
    await store(batcher, "evt_json", payload=ROUND_TRIP_PAYLOAD)

    rows = await stored_rows(database)
    assert len(rows) == 1
    assert rows[0].payload == ROUND_TRIP_PAYLOAD


async def test_payload_round_trips_through_single_insert(database):
    async with database.transaction() as session:
        event_id = await EventRepository(session).insert_if_absent(
            {
                "source": "acme",
                "idempotency_key": "evt_single",
                "event_type": "invoice.paid",
                "subject": "user_1",
                "occurred_at": NOW,
                "received_at": NOW,
                "origin": Origin.PUSH,
                "payload": ROUND_TRIP_PAYLOAD,
                "body_sha256": "a" * 64,
            }
        )

    rows = await stored_rows(database)
    assert [row.id for row in rows] == [event_id]
    assert rows[0].payload == ROUND_TRIP_PAYLOAD
    assert rows[0].payload["max_unsigned"] == 2**64 - 1


def test_dump_json_falls_back_for_values_orjson_rejects():
    assert dump_json({"big": 2**70}) == '{"big":1180591620717411303424}'
    assert dump_json({1: "int key"}) == '{"1":"int key"}'
    assert load_json(dump_json(ROUND_TRIP_PAYLOAD)) == ROUND_TRIP_PAYLOAD
    with pytest.raises(TypeError):
        dump_json({"values": {1, 2}})
