"""Group commit for the hook route: concurrent deliveries share one insert and one commit.

Each delivery is queued with a future. A few flusher tasks each take whatever
is queued (at most `max_batch_rows`) as soon as they are free, insert it with
one multi-row `INSERT ... ON CONFLICT DO NOTHING ... RETURNING` in one
transaction, and resolve every future only after the commit. There is no
timer: a batch is whatever arrived while the previous flush was running, so a
lone delivery is flushed at once and batches grow only under load.

Each delivery gets the answer `store_event` would give it alone:

- a new key is accepted;
- an existing key is a duplicate or an idempotency conflict by body hash,
  looked up for all misses of a batch in one query;
- the same key twice in one batch: the first is stored and the later ones
  are duplicates or conflicts against it;
- a batch that fails for another reason than an outage is retried row by row,
  so one bad row fails alone;
- an outage fails every delivery of the batch with the 503
  `storage_unavailable`.

Admission is bounded: at most `max_pending` deliveries may be inside the hook
route at once (queued, being flushed, or still being read and verified).
Beyond that the route answers 503 `ingest_overloaded` with Retry-After at
once, before reading the body, so a slow database cannot make every sender
time out.

NOTE: the count starts when a delivery reaches the handler. When the process
is short of CPU, the backlog builds up earlier (socket buffers, the event
loop's ready queue), so this limit does not fill and senders time out
instead; scripts/bench/bench_latency.py measures that case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.engine import Database
from app.db.errors import is_outage, storage_errors
from app.db.models import Event
from app.errors import HookledgerError, StorageUnavailableError
from app.ingest.extract import ExtractedEvent
from app.ingest.repository import EventRepository, StoredEvent
from app.ingest.service import IngestResult, classify_existing, log_stored, store_event

log = structlog.get_logger("app.ingest")


class IngestOverloadedError(StorageUnavailableError):
    """More deliveries are in progress than the process admits; the sender should retry later."""

    code = "ingest_overloaded"
    title = "Service unavailable"


# One statement text for every batch size: asyncpg prepares it once per connection, where a
# multi-row VALUES list would be compiled by SQLAlchemy and prepared again for each new size.
POSTGRES_INSERT_BATCH = text(
    """
    INSERT INTO events (source, idempotency_key, event_type, subject, occurred_at, received_at,
                        origin, payload, body_sha256)
    SELECT source, idempotency_key, event_type, subject, occurred_at, received_at,
           origin, payload::jsonb, body_sha256
    FROM unnest(CAST(:sources AS text[]), CAST(:keys AS text[]), CAST(:event_types AS text[]),
                CAST(:subjects AS text[]), CAST(:occurred_at AS timestamptz[]),
                CAST(:received_at AS timestamptz[]), CAST(:origins AS text[]), CAST(:payloads AS text[]),
                CAST(:body_hashes AS text[]))
         AS batch(source, idempotency_key, event_type, subject, occurred_at, received_at,
                  origin, payload, body_sha256)
    ON CONFLICT (source, idempotency_key) DO NOTHING
    RETURNING source, idempotency_key, id
    """
)


class BatchRepository(EventRepository):
    """Ledger inserts and lookups that serve a whole batch in one statement each.

    On PostgreSQL it runs on a connection in autocommit mode, where the insert
    is a transaction of its own; elsewhere it runs in the caller's session.
    """

    def __init__(self, session: AsyncSession | AsyncConnection, dialect: str) -> None:
        self.session = session  # type: ignore[assignment]
        self.dialect = dialect

    async def insert_batch_if_absent(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
        """Insert rows with distinct (source, idempotency_key); return the ids of new rows by that pair."""
        if not rows:
            return {}
        if self.dialect != "postgresql":
            inserted: dict[tuple[str, str], int] = {}
            for source in {row["source"] for row in rows}:
                ids = await self.insert_many_if_absent([row for row in rows if row["source"] == source])
                inserted.update({(source, key): event_id for key, event_id in ids.items()})
            return inserted
        parameters = {
            "sources": [row["source"] for row in rows],
            "keys": [row["idempotency_key"] for row in rows],
            "event_types": [row["event_type"] for row in rows],
            "subjects": [row["subject"] for row in rows],
            "occurred_at": [row["occurred_at"] for row in rows],
            "received_at": [row["received_at"] for row in rows],
            "origins": [row["origin"] for row in rows],
            "payloads": [orjson.dumps(row["payload"]).decode() for row in rows],
            "body_hashes": [row["body_sha256"] for row in rows],
        }
        result = await self.session.execute(POSTGRES_INSERT_BATCH, parameters)
        return {(source, key): event_id for source, key, event_id in result.all()}

    async def get_many_by_keys(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredEvent]:
        """Return the stored events for (source, idempotency_key) pairs; absent pairs are left out."""
        if not keys:
            return {}
        statement = select(Event.source, Event.idempotency_key, Event.id, Event.body_sha256, Event.origin).where(
            tuple_(Event.source, Event.idempotency_key).in_(list(keys))
        )
        rows = (await self.session.execute(statement)).all()
        return {
            (row.source, row.idempotency_key): StoredEvent(id=row.id, body_sha256=row.body_sha256, origin=row.origin)
            for row in rows
        }


@dataclass(eq=False)
class PendingEvent:
    """One delivery waiting for its batch to commit."""

    source: str
    event: ExtractedEvent
    payload: Any
    body_hash: str
    origin: str
    received_at: datetime
    future: asyncio.Future[IngestResult] = field(repr=False)

    @property
    def ledger_key(self) -> tuple[str, str]:
        return (self.source, self.event.idempotency_key)

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "idempotency_key": self.event.idempotency_key,
            "event_type": self.event.event_type,
            "subject": self.event.subject,
            "occurred_at": self.event.occurred_at,
            "received_at": self.received_at,
            "origin": self.origin,
            "payload": self.payload,
            "body_sha256": self.body_hash,
        }

    def resolve(self, outcome: IngestResult | BaseException) -> None:
        # The waiter may be gone (client disconnected, task cancelled); its row is stored anyway.
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class IngestBatcher:
    """Coalesces concurrent deliveries into one transaction per batch; build one per application."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch_rows: int = 128,
        max_pending: int = 1024,
        flushers: int = 2,
        retry_after_seconds: int = 5,
    ) -> None:
        if max_batch_rows < 1 or max_pending < 1 or flushers < 1:
            raise ValueError("max_batch_rows, max_pending and flushers must be at least 1")
        self.database = database
        self.max_batch_rows = max_batch_rows
        self.max_pending = max_pending
        self.flushers = flushers
        self.retry_after_seconds = retry_after_seconds
        self._queue: deque[PendingEvent] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # One kept autocommit connection per flusher (PostgreSQL only), opened on first use.
        self._connections: list[AsyncConnection | None] = [None] * flushers
        self._admitted = 0
        self._closing = False
        self.batches_flushed = 0
        self.rows_flushed = 0

    @property
    def queued(self) -> int:
        """Deliveries waiting for a flusher."""
        return len(self._queue)

    @property
    def admitted(self) -> int:
        """Deliveries inside the hook route now."""
        return self._admitted

    def start(self) -> None:
        """Start the flusher tasks on the running event loop."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._run_flusher(index), name=f"ingest-flusher-{index}") for index in range(self.flushers)
        ]
        log.info(
            "ingest.batcher_started",
            flushers=self.flushers,
            max_batch_rows=self.max_batch_rows,
            max_pending=self.max_pending,
        )

    async def close(self) -> None:
        """Stop admitting deliveries, flush everything queued, and stop the flushers."""
        self._closing = True
        self._wakeup.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # Only reached when a flusher died; nothing may wait forever.
        self._fail_queued(self._shutting_down_error())
        log.info("ingest.batcher_stopped", batches=self.batches_flushed, rows=self.rows_flushed)

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Hold one of the `max_pending` places for a delivery; raise the 503 at once when none is free."""
        if self._closing:
            raise self._shutting_down_error()
        if self._admitted >= self.max_pending:
            raise self._overloaded_error()
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def store(
        self,
        *,
        source: str,
        event: ExtractedEvent,
        payload: Any,
        body_hash: str,
        origin: str,
        received_at: datetime,
    ) -> IngestResult:
        """Queue one event and return its outcome once its batch has committed.

        Raises `IdempotencyConflictError` for a changed body, `StorageUnavailableError`
        when the database is down, and `IngestOverloadedError` when the queue is full.
        """
        if self._closing or not self._tasks:
            raise self._shutting_down_error()
        if len(self._queue) >= self.max_pending:
            raise self._overloaded_error()
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.append(PendingEvent(source, event, payload, body_hash, origin, received_at, future))
        self._wakeup.set()
        return await future

    def _overloaded_error(self) -> IngestOverloadedError:
        log.warning("ingest.overloaded", admitted=self._admitted, queued=len(self._queue), limit=self.max_pending)
        return IngestOverloadedError(
            f"The service is receiving more deliveries than it can store ({self.max_pending} in progress); "
            f"nothing was stored. Retry after {self.retry_after_seconds} seconds.",
            headers={"Retry-After": str(self.retry_after_seconds)},
        )

    def _shutting_down_error(self) -> StorageUnavailableError:
        return StorageUnavailableError(
            "The service is shutting down; nothing was stored. "
            f"Retry after {self.retry_after_seconds} seconds.",
            code="shutting_down",
            headers={"Retry-After": str(self.retry_after_seconds)},
        )

    def _fail_queued(self, error: HookledgerError) -> None:
        while self._queue:
            self._queue.popleft().resolve(error)

    async def _run_flusher(self, index: int) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                count = min(len(self._queue), self.max_batch_rows)
                batch = [self._queue.popleft() for _ in range(count)]
                self.batches_flushed += 1
                self.rows_flushed += count
                try:
                    await self._flush(index, batch)
                except BaseException as exc:
                    # A cancelled flusher (or a bug) must not leave waiters hanging.
                    error = exc if isinstance(exc, Exception) else self._shutting_down_error()
                    for pending in batch:
                        pending.resolve(error)
                    if not isinstance(exc, Exception):
                        raise
                    log.exception("ingest.batch_failed", rows=len(batch))
        finally:
            await self._release_connection(index, invalidate=False)

    async def _flush(self, index: int, batch: list[PendingEvent]) -> None:
        """Store one batch; on a non-outage failure store its rows one by one.

        On PostgreSQL each flusher keeps one connection in autocommit mode, so a
        batch costs one round trip (the insert, which commits on its own) plus a
        lookup when keys already existed.
        """
        try:
            if self.database.dialect == "postgresql":
                outcomes = await self._store_on_connection(index, batch)
            else:
                async with self.database.transaction() as session:
                    outcomes = await store_batch(BatchRepository(session, self.database.dialect), batch)
        except Exception as exc:
            if is_outage(exc):
                await self._release_connection(index, invalidate=True)
                error = self._outage_error(exc, batch)
                for pending in batch:
                    pending.resolve(error)
                return
            if len(batch) == 1:
                batch[0].resolve(exc)
                return
            log.warning(
                "ingest.batch_retried_per_row",
                rows=len(batch),
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            for pending in batch:
                await self._flush_one(pending)
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, IngestResult) and outcome.status == "accepted":
                log_stored(pending.source, pending.event, outcome.event_id, pending.origin)
            pending.resolve(outcome)

    async def _store_on_connection(self, index: int, batch: list[PendingEvent]) -> list[IngestResult | HookledgerError]:
        """Store a batch on the flusher's autocommit connection, opening one when needed.

        A kept connection may have died since the last batch (a database
        restart, a dropped proxy), so an outage on a reused connection is
        retried once on a new one. The retry is safe: rows that the first
        attempt committed come back as duplicates of themselves.
        """
        reused = self._connections[index] is not None
        while True:
            connection = self._connections[index]
            if connection is None:
                connection = await self.database.engine.connect()
                self._connections[index] = connection
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                return await store_batch(BatchRepository(connection, "postgresql"), batch)
            except Exception as exc:
                if not (reused and is_outage(exc)):
                    raise
                log.info("ingest.connection_replaced", error=f"{type(exc).__name__}: {exc}"[:200])
                await self._release_connection(index, invalidate=True)
                reused = False

    async def _release_connection(self, index: int, *, invalidate: bool) -> None:
        """Close a flusher's kept connection; an invalidated one is not returned to the pool."""
        connection = self._connections[index]
        if connection is None:
            return
        self._connections[index] = None
        try:
            if invalidate:
                await connection.invalidate()
            await connection.close()
        except Exception as exc:
            log.warning("ingest.connection_close_failed", error=f"{type(exc).__name__}: {exc}"[:500])

    async def _flush_one(self, pending: PendingEvent) -> None:
        try:
            async with storage_errors(self.retry_after_seconds, source=pending.source):
                async with self.database.transaction() as session:
                    result = await store_event(
                        session,
                        source=pending.source,
                        event=pending.event,
                        payload=pending.payload,
                        body_hash=pending.body_hash,
                        origin=pending.origin,
                        received_at=pending.received_at,
                    )
        except Exception as exc:
            pending.resolve(exc)
        else:
            pending.resolve(result)

    def _outage_error(self, exc: Exception, batch: list[PendingEvent]) -> StorageUnavailableError:
        log.warning(
            "db.unavailable",
            error=f"{type(exc).__name__}: {exc}"[:500],
            rows=len(batch),
            sources=sorted({pending.source for pending in batch}),
        )
        error = StorageUnavailableError(
            f"The database is unavailable ({type(exc).__name__}); nothing was stored. "
            f"Retry after {self.retry_after_seconds} seconds.",
            headers={"Retry-After": str(self.retry_after_seconds)},
        )
        error.__cause__ = exc
        return error


async def store_batch(
    repository: BatchRepository, batch: Sequence[PendingEvent]
) -> list[IngestResult | HookledgerError]:
    """Insert a batch and classify every delivery; the caller's transaction commits it.

    Returns one outcome per delivery, in order: a result, or the error that
    delivery alone would have raised (conflict, concurrent update).
    """
    firsts: dict[tuple[str, str], PendingEvent] = {}
    for pending in batch:
        firsts.setdefault(pending.ledger_key, pending)

    inserted = await repository.insert_batch_if_absent([pending.row() for pending in firsts.values()])

    misses = [key for key in firsts if key not in inserted]
    existing = await repository.get_many_by_keys(misses)

    outcomes: list[IngestResult | HookledgerError] = []
    for pending in batch:
        first = firsts[pending.ledger_key]
        try:
            outcomes.append(_classify(pending, first, inserted, existing))
        except HookledgerError as exc:
            outcomes.append(exc)
    return outcomes


def _classify(
    pending: PendingEvent,
    first: PendingEvent,
    inserted: dict[tuple[str, str], int],
    existing: dict[tuple[str, str], StoredEvent],
) -> IngestResult:
    source, key = pending.ledger_key
    event_id = inserted.get(pending.ledger_key)
    if event_id is not None:
        if pending is first:
            return IngestResult("accepted", event_id)
        # A later delivery of a key this batch inserted is compared with the first one.
        return classify_existing(source, key, event_id, first.body_hash, first.origin, pending.body_hash)
    stored = existing.get(pending.ledger_key)
    if stored is None:
        # A reconciliation run retracted the conflicting row between the insert and the lookup.
        raise StorageUnavailableError(
            f"Event {key!r} of source {source!r} changed while it was being stored; retry the delivery.",
            code="concurrent_update",
        )
    return classify_existing(source, key, stored.id, stored.body_sha256, stored.origin, pending.body_hash)
