"""Group commit for the hook route: concurrent deliveries share one insert and one commit.

Each delivery is queued with a future. A few flusher tasks each take whatever
is queued (at most `max_batch_rows`) as soon as they are free, insert it with
one multi-row `INSERT ... ON CONFLICT DO NOTHING ... RETURNING` in one
transaction, and resolve every future only after the commit. There is no
timer: a batch is whatever arrived while the previous flush was running, so a
lone delivery is flushed at once and batches grow only under load.

Each delivery gets the result `store_event` would give it alone:

- a new key is accepted;
- an existing key is a duplicate or an idempotency conflict by body hash,
  looked up for all misses of a batch in one query;
- the same key twice in one batch: the first is stored and the later ones
  are duplicates or conflicts against it;
- a batch that fails for another reason than an outage is retried row by row,
  so one bad row fails alone;
- an outage fails every delivery of the batch with the 503
  `storage_unavailable`.

The hook route calls `admission()` before it reads the body, and it refuses
a delivery in two cases:

- by count: `max_pending` deliveries are already inside the hook route
  (queued, being flushed, or still being read and verified);
- by delay: the expected wait of a new delivery has exceeded
  `max_queue_delay` seconds for at least `overload_hold` seconds. The
  expected wait is the larger of the event loop's lag (work that waits for
  the CPU before any handler runs, measured by `loop_lag.LoopLagMonitor`)
  and the queue delay (the age of the oldest queued delivery plus the
  recent commit latency). The hold keeps one stall (a garbage collection,
  the process descheduled once) from rejecting anything, because the queue
  drains and the lag falls within a flush or two after it; sustained
  overload keeps the wait above the target.

A delivery over either bound gets the 503 `ingest_overloaded` with
Retry-After at once, so a slow database or a CPU-bound process answers fast
instead of making every sender time out. A rejected delivery was never
queued, so nothing of it is stored; deliveries admitted earlier still
complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.engine import Database
from app.db.errors import is_outage, storage_errors
from app.errors import HookledgerError, StorageUnavailableError
from app.ingest.extract import ExtractedEvent
from app.ingest.repository import EventRepository, StoredEvent
from app.ingest.service import IngestResult, classify_existing, log_stored, store_event

log = structlog.get_logger("app.ingest")


class IngestOverloadedError(StorageUnavailableError):
    """More deliveries are in progress than the process admits; the sender should retry later."""

    code = "ingest_overloaded"
    title = "Service unavailable"


# Weight of the newest batch in the commit latency average.
COMMIT_LATENCY_WEIGHT = 0.2
# Seconds the expected wait must stay above `max_queue_delay` before deliveries are rejected.
OVERLOAD_HOLD_SECONDS = 0.1
# Minimum seconds between two `ingest.overloaded` log lines; the lines in between are counted.
OVERLOAD_LOG_INTERVAL = 1.0


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
    # The batcher's monotonic clock when the delivery was queued, in seconds.
    enqueued_at: float = 0.0

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
        max_queue_delay: float | None = None,
        overload_hold: float = OVERLOAD_HOLD_SECONDS,
        loop_lag: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build a batcher; call `start()` on the running loop before `store()`.

        `max_queue_delay` bounds the expected wait of a new delivery in
        seconds, and None turns that check off. `overload_hold` is how long
        the wait must stay above it, in seconds. `loop_lag` returns the event
        loop's lag in seconds. `clock` is the monotonic clock (seconds) for
        queue ages and commit latency.
        """
        if max_batch_rows < 1 or max_pending < 1 or flushers < 1:
            raise ValueError("max_batch_rows, max_pending and flushers must be at least 1")
        if max_queue_delay is not None and max_queue_delay <= 0:
            raise ValueError("max_queue_delay must be positive or None")
        if overload_hold < 0:
            raise ValueError("overload_hold must not be negative")
        self.database = database
        self.max_batch_rows = max_batch_rows
        self.max_pending = max_pending
        self.flushers = flushers
        self.retry_after_seconds = retry_after_seconds
        self.max_queue_delay = max_queue_delay
        self.overload_hold = overload_hold
        self.loop_lag = loop_lag
        self.clock = clock
        self._queue: deque[PendingEvent] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # One kept autocommit connection per flusher (PostgreSQL only), opened on first use.
        self._connections: list[AsyncConnection | None] = [None] * flushers
        self._admitted = 0
        self._closing = False
        self._commit_seconds = 0.0
        # Monotonic time of the first admission that saw the expected wait above the target since
        # it was last at or below it; None while it is at or below.
        self._over_target_since: float | None = None
        self._rejected_since_log = 0
        self._last_overload_log = float("-inf")
        self.batches_flushed = 0
        self.rows_flushed = 0
        self.rejected = 0

    @property
    def queued(self) -> int:
        """Deliveries waiting for a flusher."""
        return len(self._queue)

    @property
    def admitted(self) -> int:
        """Deliveries inside the hook route now."""
        return self._admitted

    @property
    def commit_seconds(self) -> float:
        """Moving average of the seconds one batch took to store and commit."""
        return self._commit_seconds

    def queue_delay(self) -> float:
        """Return the expected seconds a delivery queued now waits for its commit; 0.0 with an empty queue.

        That is the age of the oldest queued delivery plus the commit latency
        average. With an empty queue a new delivery is flushed as soon as a
        flusher is free, and the estimate falls back to 0 whatever the last
        commits took, so refusals end once the queue drains.
        """
        if not self._queue:
            return 0.0
        return max(0.0, self.clock() - self._queue[0].enqueued_at) + self._commit_seconds

    def expected_delay(self) -> float:
        """Return the larger of the event loop's lag and the queue delay, in seconds."""
        lag = self.loop_lag() if self.loop_lag is not None else 0.0
        return max(lag, self.queue_delay())

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
            max_queue_delay_ms=None if self.max_queue_delay is None else round(self.max_queue_delay * 1e3),
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
        log.info(
            "ingest.batcher_stopped", batches=self.batches_flushed, rows=self.rows_flushed, rejected=self.rejected
        )

    def check_admission(self) -> None:
        """Raise the 503 `ingest_overloaded` now if a new delivery would not be admitted.

        The route calls this before it reads the body, so an overloaded
        process rejects deliveries without spending time on them.
        """
        if self._closing:
            raise self._shutting_down_error()
        if self._admitted >= self.max_pending:
            raise self._overloaded_error(
                f"{self._admitted} deliveries are in progress, the limit is {self.max_pending}"
            )
        if self.max_queue_delay is not None:
            delay = self._sustained_delay(self.max_queue_delay)
            if delay is not None:
                raise self._overloaded_error(
                    f"a new delivery would wait about {delay * 1e3:.0f} ms, "
                    f"the limit is {self.max_queue_delay * 1e3:.0f} ms"
                )

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Hold one of the `max_pending` places for a delivery.

        Raises the 503 `ingest_overloaded` at once when no place is free or
        the expected wait has exceeded `max_queue_delay` for `overload_hold`.
        """
        self.check_admission()
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    def _sustained_delay(self, target: float) -> float | None:
        """Return the expected wait if it has stayed above `target` for `overload_hold`, else None."""
        delay = self.expected_delay()
        if delay <= target:
            self._over_target_since = None
            return None
        now = self.clock()
        if self._over_target_since is None:
            self._over_target_since = now
        if now - self._over_target_since < self.overload_hold:
            return None
        return delay

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
            raise self._overloaded_error(f"{len(self._queue)} deliveries are queued, the limit is {self.max_pending}")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.append(
            PendingEvent(source, event, payload, body_hash, origin, received_at, future, enqueued_at=self.clock())
        )
        self._wakeup.set()
        return await future

    def _overloaded_error(self, reason: str) -> IngestOverloadedError:
        self.rejected += 1
        self._rejected_since_log += 1
        now = self.clock()
        # Under overload this runs for every rejected delivery, so the log line is rate-limited.
        if now - self._last_overload_log >= OVERLOAD_LOG_INTERVAL:
            log.warning(
                "ingest.overloaded",
                reason=reason,
                rejected=self._rejected_since_log,
                admitted=self._admitted,
                queued=len(self._queue),
            )
            self._last_overload_log = now
            self._rejected_since_log = 0
        return IngestOverloadedError(
            f"The service is receiving more deliveries than it can store ({reason}); "
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
        started = self.clock()
        try:
            if self.database.dialect == "postgresql":
                outcomes = await self._store_on_connection(index, batch)
            else:
                async with self.database.transaction() as session:
                    outcomes = await store_batch(EventRepository(session), batch)
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
        elapsed = self.clock() - started
        self._commit_seconds += COMMIT_LATENCY_WEIGHT * (elapsed - self._commit_seconds)
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
                return await store_batch(EventRepository(connection), batch)
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
    repository: EventRepository, batch: Sequence[PendingEvent]
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
