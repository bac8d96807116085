"""Builders for reconciliation tests: a fake query engine, log records, pushes and ledger reads."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.db.engine import Database
from app.db.models import Event, Origin
from app.ingest.repository import EventRepository
from app.reconciliation.config import ReconciliationConfig, parse_source_reconciliation
from app.reconciliation.engines.base import LogQuery, LogRecord, QueryStats
from app.reconciliation.mappings import builtin_mappings

DAY = datetime(2026, 12, 1, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)
# Two hours after the window [DAY, NEXT_DAY) ended: settled under the default 1h lag.
NOW = NEXT_DAY + timedelta(hours=2)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    """Return a time on DAY."""
    return DAY + timedelta(hours=hours, minutes=minutes, seconds=seconds)


class FakeResult:
    def __init__(self, records: list[LogRecord], batch_size: int, stats: QueryStats) -> None:
        self.records = records
        self.batch_size = batch_size
        self.stats = stats

    def batches(self) -> Iterator[list[LogRecord]]:
        for offset in range(0, len(self.records), self.batch_size):
            batch = self.records[offset : offset + self.batch_size]
            self.stats.rows += len(batch)
            yield batch


class FakeEngine:
    """A query engine over records in memory, ordered as the real engines order them.

    `dedupe=False` passes repeated log ids through, as a broken mapping would.
    """

    name = "fake"

    def __init__(
        self,
        records: Iterable[LogRecord] = (),
        *,
        error: Exception | None = None,
        batch_size: int = 3,
        dedupe: bool = True,
        bytes_scanned: int = 1234,
    ) -> None:
        self.records = list(records)
        self.error = error
        self.batch_size = batch_size
        self.dedupe = dedupe
        self.bytes_scanned = bytes_scanned
        self.queries: list[LogQuery] = []

    def query_logs(self, query: LogQuery) -> FakeResult:
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        selected = [record for record in self.records if query.start <= record.occurred_at < query.end]
        if self.dedupe:
            selected = list({record.log_id: record for record in reversed(selected)}.values())
        selected.sort(key=lambda record: (record.subject is not None, record.subject or "", record.occurred_at, record.log_id))
        stats = QueryStats(engine=self.name, query_id=f"q-{len(self.queries)}", bytes_scanned=self.bytes_scanned)
        return FakeResult(selected, self.batch_size, stats)


class BlockingEngine(FakeEngine):
    """Holds its first batch until `release` is set, so a run stays in progress."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started = threading.Event()
        self.release = threading.Event()

    def query_logs(self, query):
        result = super().query_logs(query)
        inner = result.batches

        def batches():
            self.started.set()
            self.release.wait(timeout=30)
            yield from inner()

        result.batches = batches
        return result


def log_record(
    log_id: str,
    user: str | None,
    occurred_at: datetime,
    *,
    event_type: str = "login",
    transaction_id: str | None = None,
    session_id: str | None = None,
    client_id: str | None = "web",
    idempotency_key: str | None = None,
) -> LogRecord:
    return LogRecord(
        log_id=log_id,
        event_type=event_type,
        subject=user,
        occurred_at=occurred_at,
        idempotency_key=idempotency_key,
        transaction_id=transaction_id,
        session_id=session_id,
        client_id=client_id,
        payload={"log_id": log_id, "user_id": user, "date": occurred_at.isoformat(), "type": "s"},
    )


def action_body(
    user: str,
    occurred_at: datetime,
    *,
    kind: str = "login",
    transaction_id: str | None = None,
    session_id: str | None = None,
    client_id: str | None = "web",
) -> dict[str, Any]:
    """Return a body shaped like the Auth0 post-login Action's push."""
    return {
        "type": kind,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "kind": kind,
            "user_id": user,
            "client_id": client_id,
            "transaction_id": transaction_id,
            "session_id": session_id,
        },
    }


async def add_push(
    database: Database,
    key: str,
    user: str | None,
    occurred_at: datetime,
    *,
    source: str = "auth0",
    kind: str = "login",
    origin: str = Origin.PUSH,
    **hints: Any,
) -> int:
    """Store one pushed event directly in the ledger and return its id."""
    body = action_body(user or "", occurred_at, kind=kind, **hints)
    raw = json.dumps(body).encode()
    async with database.transaction() as session:
        event_id = await EventRepository(session).insert_if_absent(
            {
                "source": source,
                "idempotency_key": key,
                "event_type": kind,
                "subject": user,
                "occurred_at": occurred_at,
                "received_at": occurred_at + timedelta(seconds=1),
                "origin": origin,
                "payload": body,
                "body_sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
    assert event_id is not None
    return event_id


async def ledger_rows(database: Database, source: str = "auth0") -> list[Event]:
    async with database.transaction() as session:
        statement = select(Event).where(Event.source == source).order_by(Event.id)
        return list((await session.execute(statement)).scalars())


async def reconciled_rows(database: Database, source: str = "auth0") -> list[Event]:
    return [row for row in await ledger_rows(database, source) if row.origin == Origin.RECONCILIATION]


async def counts_per_subject(
    database: Database, start: datetime = DAY, end: datetime = NEXT_DAY, source: str = "auth0"
) -> Counter[str | None]:
    return Counter(row.subject for row in await ledger_rows(database, source) if start <= row.occurred_at < end)


def reconciliation_config(
    local_root: Path, *, source: str = "auth0", extra_sources: Sequence[str] = (), **table: Any
) -> ReconciliationConfig:
    """Build the settings of one source the way the configuration file would."""
    mappings = builtin_mappings()
    raw = {"mapping": "auth0", "local_root": str(local_root)} | table
    sources = {source: parse_source_reconciliation(source, raw, mappings, None)}
    for name in extra_sources:
        sources[name] = parse_source_reconciliation(name, raw, mappings, None)
    return ReconciliationConfig(sources=sources, mappings=mappings)
