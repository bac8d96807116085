"""Reconcile one source over one window: claim the run, read logs, write the gaps.

A run has two phases:

1. Plan, with no write lock held: the log query runs in a worker thread and
   its batches are merge-joined with the window's pushed events, read through
   one cursor in a read-only transaction (see `planner`).
2. Write, in one transaction: check the lease, insert the gaps with
   `ON CONFLICT DO NOTHING`, retract reconciliation rows whose log record now
   has a pushed twin, and close the run record.

A push that arrives between the two phases is not seen by this run. Its
twin's reconciliation row, if one is written, is retracted by the next run of
the window, so the ledger converges.

Only one run per source and window is active at a time across processes. The
run row carries a lease (`lease_owner`, `lease_expires_at`) that the running
process renews. A claim inserts a running row, which a partial unique index
allows once per (source, window), or takes over a running row whose lease has
expired. On PostgreSQL the claim also takes `pg_try_advisory_xact_lock` on the
(source, window) pair. On SQLite every write transaction is serialized, and
each claim step is a single INSERT or conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
import structlog

from app.db.engine import Database
from app.db.models import Origin, ReconciliationRun
from app.errors import StorageUnavailableError
from app.reconciliation.config import ReconciliationConfig, SourceReconciliation
from app.reconciliation.engines.base import LogQuery, LogRecord, QueryEngine, QueryStats
from app.reconciliation.engines.errors import QueryEngineError
from app.reconciliation.errors import (
    LeaseLostError,
    ReconciliationError,
    ReconciliationNotConfiguredError,
    RunNotFoundError,
    UnknownSourceError,
)
from app.reconciliation.observability import ReconciliationMetrics
from app.reconciliation.planner import KeyPlanner, MatchPlanner, Plan, PushStream, record_key
from app.reconciliation.repository import LedgerRepository, RunRepository, RunStatus
from app.reconciliation.windows import Window, resolve_window
from app.state import Clock, utc_now

log = structlog.get_logger("app.reconciliation")

EngineFactory = Callable[[SourceReconciliation], QueryEngine]
# Called with the number of log records read so far.
Progress = Callable[[int], None]

T = TypeVar("T")
U = TypeVar("U")

# Pushed events read ahead while the log query runs; about 200 bytes each in memory.
PUSH_PREFETCH_ROWS = 200_000
CLAIM_ATTEMPTS = 100
CLAIM_RETRY_SECONDS = 0.05
MAX_ERROR_CHARS = 2000
# Columns and fields longer than these are not written; see `_gap_row`.
MAX_TEXT_CHARS = 255


@dataclass(frozen=True)
class Claim:
    """The run a trigger got: `acquired` is True when this process now owns it and must execute it."""

    run: ReconciliationRun
    acquired: bool


def default_owner() -> str:
    """Return a lease owner id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def default_engine_factory(settings: SourceReconciliation) -> QueryEngine:
    """Build the engine the source's mapping names (DuckDB or Athena) from environment settings."""
    from app.reconciliation.engines.factory import build_engine

    return build_engine(settings.mapping)


class Reconciler:
    """Claims, executes and reads reconciliation runs for the configured sources."""

    def __init__(
        self,
        database: Database,
        config: ReconciliationConfig,
        *,
        known_sources: frozenset[str] | None = None,
        engine_factory: EngineFactory = default_engine_factory,
        clock: Clock = utc_now,
        metrics: ReconciliationMetrics | None = None,
        owner: str | None = None,
        lease_duration: timedelta = timedelta(minutes=5),
        renew_every: timedelta | None = None,
    ) -> None:
        self.database = database
        self.config = config
        self.known_sources = known_sources if known_sources is not None else frozenset(config.sources)
        self.engine_factory = engine_factory
        self.engines: dict[str, QueryEngine] = {}
        self.clock = clock
        self.metrics = metrics
        self.owner = owner or default_owner()
        self.lease_duration = lease_duration
        self.renew_every = renew_every or lease_duration / 3

    # --- lookups ---------------------------------------------------------------------------

    def settings_for(self, source: str) -> SourceReconciliation:
        """Return the source's settings; 404 for an unknown source, 422 when it has no reconciliation."""
        if source in self.config.sources:
            return self.config.sources[source]
        if source in self.known_sources:
            raise ReconciliationNotConfiguredError(
                f"Source {source!r} has no reconciliation settings; add a [sources.{source}.reconciliation] table "
                "to the configuration file."
            )
        known = ", ".join(sorted(self.config.sources)) or "none"
        raise UnknownSourceError(
            f"Source {source!r} is not configured; sources with reconciliation: {known}.", source=source
        )

    def engine_for(self, settings: SourceReconciliation) -> QueryEngine:
        """Return the source's query engine, built on first use."""
        engine = self.engines.get(settings.source)
        if engine is None:
            engine = self.engines[settings.source] = self.engine_factory(settings)
        return engine

    def window_for(self, source: str, start: datetime | None = None, end: datetime | None = None) -> Window:
        """Return the requested window of `source`, or its last settled one; raise InvalidWindowError."""
        settings = self.settings_for(source)
        return resolve_window(start, end, now=self.clock(), size=settings.window, settle_lag=settings.settle_lag)

    async def get_run(self, run_id: int) -> ReconciliationRun:
        async with self.database.transaction() as session:
            run = await RunRepository(session).get(run_id)
        if run is None:
            raise RunNotFoundError(f"No reconciliation run has id {run_id}; list runs with GET /v1/reconciliations.")
        return run

    async def list_runs(
        self, *, source: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[ReconciliationRun]:
        async with self.database.transaction() as session:
            return await RunRepository(session).list_runs(source=source, status=status, limit=limit)

    # --- claiming --------------------------------------------------------------------------

    async def claim(self, source: str, window: Window) -> Claim:
        """Start a run of (source, window), take over one whose lease expired, or return the live one."""
        settings = self.settings_for(source)
        engine_name = self.engine_for(settings).name
        for _ in range(CLAIM_ATTEMPTS):
            claim = await self._try_claim(source, window, engine_name)
            if claim is not None:
                return claim
            await asyncio.sleep(CLAIM_RETRY_SECONDS)
        raise StorageUnavailableError(
            f"Could not claim the reconciliation of {source!r} for {window}: other processes kept the claim "
            "locked; retry the request.",
            code="reconciliation_claim_contended",
        )

    async def _try_claim(self, source: str, window: Window, engine_name: str) -> Claim | None:
        async with self.database.transaction() as session:
            runs = RunRepository(session)
            if not await runs.try_advisory_lock(source, window):
                return None
            now = self.clock()
            lease_until = now + self.lease_duration
            run_id = await runs.insert_running(
                source, window, engine=engine_name, owner=self.owner, now=now, lease_until=lease_until
            )
            if run_id is not None:
                return Claim(await self._load(runs, run_id), acquired=True)

            running = await runs.get_running(source, window)
            if running is None:
                # The running row finished between the insert and the read.
                return None
            if running.lease_expires_at is not None and running.lease_expires_at > now:
                return Claim(running, acquired=False)
            previous_owner = running.lease_owner
            taken = await runs.take_over(
                running.id, expired_at=running.lease_expires_at, owner=self.owner, now=now, lease_until=lease_until
            )
            if not taken:
                return None
            log.warning(
                "reconciliation.lease_taken_over",
                run_id=running.id,
                source=source,
                previous_owner=previous_owner,
                lease_expired_at=running.lease_expires_at.isoformat() if running.lease_expires_at else None,
                owner=self.owner,
            )
            return Claim(await self._load(runs, running.id), acquired=True)

    @staticmethod
    async def _load(runs: RunRepository, run_id: int) -> ReconciliationRun:
        run = await runs.get(run_id)
        assert run is not None
        return run

    # --- executing -------------------------------------------------------------------------

    async def reconcile(
        self,
        source: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> Claim:
        """Claim and execute one window in this task; a window another process runs is returned as it is."""
        window = self.window_for(source, start, end)
        claim = await self.claim(source, window)
        if not claim.acquired:
            return claim
        return Claim(await self.execute(claim.run.id, progress=progress), acquired=True)

    async def execute(self, run_id: int, *, progress: Progress | None = None) -> ReconciliationRun:
        """Execute a claimed run and return its final record.

        Failures are recorded on the run (`failed`, with the error) and do not
        raise. Cancellation marks the run failed and propagates.
        """
        run = await self.get_run(run_id)
        run_log = log.bind(run_id=run_id, source=run.source)
        if run.status != RunStatus.RUNNING or run.lease_owner != self.owner:
            run_log.warning("reconciliation.run_not_owned", status=run.status, lease_owner=run.lease_owner, owner=self.owner)
            return run
        settings = self.settings_for(run.source)
        window = Window(run.window_start, run.window_end)
        started = time.monotonic()
        lease = _LeaseKeeper(self, run_id)
        # Engine and planner log lines carry the run id through the context variables.
        with structlog.contextvars.bound_contextvars(run_id=run_id, source=run.source):
            run_log.info(
                "reconciliation.run_started",
                window_start=window.start.isoformat(),
                window_end=window.end.isoformat(),
                strategy=settings.strategy,
                owner=self.owner,
            )
            lease.start()
            try:
                stats, plan = await self._plan(run_id, settings, window, lease, progress)
                counts = await self._write(run_id, settings, window, plan, stats)
            except asyncio.CancelledError:
                await asyncio.shield(
                    self._fail(run_id, run.source, "Cancelled: the process stopped while the run was in progress.", None)
                )
                raise
            except Exception as exc:
                query_id = exc.query_id if isinstance(exc, QueryEngineError) else None
                if isinstance(exc, ReconciliationError | QueryEngineError):
                    run_log.warning("reconciliation.run_error", error=str(exc), error_type=type(exc).__name__)
                else:
                    run_log.exception("reconciliation.run_error")
                await self._fail(run_id, run.source, f"{type(exc).__name__}: {exc}", query_id)
            else:
                self._record_success(settings, window, counts, stats, time.monotonic() - started)
            finally:
                await lease.stop()
        return await self.get_run(run_id)

    def _query(self, run_id: int, settings: SourceReconciliation, window: Window) -> LogQuery:
        # Matching needs the log records just outside the window too (see MatchPlanner).
        margin = settings.tolerance if settings.strategy == "match" else timedelta(0)
        token = hashlib.sha256(
            f"hookledger|{settings.source}|{window.start.isoformat()}|{window.end.isoformat()}|{run_id}".encode()
        ).hexdigest()
        return LogQuery(
            mapping=settings.mapping,
            start=window.start - margin,
            end=window.end + margin,
            lag_margin=settings.lag_margin,
            request_token=token,
        )

    def _push_range(self, settings: SourceReconciliation, window: Window) -> tuple[datetime, datetime]:
        if settings.strategy == "key":
            return window.start, window.end
        # Log records read up to `tolerance` outside the window pair with pushes up to
        # the larger of the two bounds further out.
        margin = settings.tolerance + max(settings.tolerance, settings.transaction_tolerance)
        return window.start - margin, window.end + margin

    async def _plan(
        self,
        run_id: int,
        settings: SourceReconciliation,
        window: Window,
        lease: _LeaseKeeper,
        progress: Progress | None,
    ) -> tuple[QueryStats, Plan]:
        engine = self.engine_for(settings)
        query = self._query(run_id, settings, window)
        push_start, push_end = self._push_range(settings, window)
        hints = settings.hint_pointers.model_dump() if settings.strategy == "match" else None
        pushes = PushStream(self.database, settings.source, push_start, push_end, hints)
        planner: MatchPlanner | KeyPlanner = (
            MatchPlanner(settings, window, pushes)
            if settings.strategy == "match"
            else KeyPlanner(self.database, settings.source, pushes)
        )

        try:
            result = await asyncio.to_thread(engine.query_logs, query)
            batches: Iterator[list[LogRecord]] = result.batches()
            scanned = 0
            # The engine's first batch waits for the whole query (the SQL ends with ORDER BY),
            # so the first pushes are read from the ledger meanwhile.
            batch, _ = await _both(asyncio.to_thread(next, batches, None), pushes.prefetch(PUSH_PREFETCH_ROWS))
            while batch is not None:
                lease.raise_if_lost()
                scanned += len(batch)
                await planner.add(batch)
                if progress is not None:
                    progress(scanned)
                batch = await asyncio.to_thread(next, batches, None)
            plan = await planner.finish()
        except BaseException:
            # The original error or cancellation wins: closing a stream whose read was
            # cancelled mid-flight can fail as well, and must not replace it.
            with contextlib.suppress(Exception):
                await pushes.close()
            raise
        await pushes.close()
        result.stats.rows = max(result.stats.rows, scanned)
        return result.stats, plan

    async def _write(
        self, run_id: int, settings: SourceReconciliation, window: Window, plan: Plan, stats: QueryStats
    ) -> dict[str, Any]:
        now = self.clock()
        async with self.database.transaction() as session:
            runs = RunRepository(session)
            ledger = LedgerRepository(session)
            # The first statement takes SQLite's write lock and fails when the lease was lost.
            if not await runs.renew_lease(run_id, owner=self.owner, lease_until=now + self.lease_duration):
                raise LeaseLostError(f"Run {run_id} lost its lease before writing; another process took it over.")

            retract_keys: list[str] = []
            if settings.strategy == "match":
                reconciled = await ledger.reconciled_log_ids(settings.source, window)
                gaps = [record for record in plan.gaps if record.log_id not in reconciled]
                retract_keys = [match_key(log_id) for log_id in sorted(plan.matched_log_ids & reconciled)]
            else:
                gaps = plan.gaps
            rows = [row for record in gaps if (row := self._gap_row(settings, record, run_id, now)) is not None]
            gaps_filled = await ledger.insert_absent(rows)
            rows_retracted = await ledger.retract(settings.source, retract_keys)

            counts = {
                "rows_scanned": stats.rows,
                "gaps_filled": gaps_filled,
                "rows_retracted": rows_retracted,
                "pushes_without_log": plan.pushes_without_log,
                "query_id": stats.query_id,
                "bytes_scanned": stats.bytes_scanned,
                "engine": stats.engine,
                "finished_at": self.clock(),
                "error": None,
            }
            if not await runs.finish(run_id, owner=self.owner, status=RunStatus.SUCCEEDED, values=counts):
                raise LeaseLostError(f"Run {run_id} lost its lease while writing; another process took it over.")
        return counts | {"run_id": run_id, "push_ids_without_log": plan.push_ids_without_log}

    def _gap_row(
        self, settings: SourceReconciliation, record: LogRecord, run_id: int, now: datetime
    ) -> dict[str, Any] | None:
        key = record_key(record) if settings.strategy == "key" else match_key(record.log_id)
        too_long = [
            name
            for name, value in (("idempotency_key", key), ("event_type", record.event_type), ("subject", record.subject))
            if value is not None and len(value) > MAX_TEXT_CHARS
        ]
        if too_long:
            log.warning("reconciliation.record_skipped", log_id=record.log_id[:MAX_TEXT_CHARS], too_long=too_long)
            return None
        payload_bytes = orjson.dumps(record.payload, option=orjson.OPT_SORT_KEYS)
        return {
            "source": settings.source,
            "idempotency_key": key,
            "event_type": record.event_type,
            "subject": record.subject,
            "occurred_at": record.occurred_at,
            "received_at": now,
            "origin": Origin.RECONCILIATION,
            "payload": record.payload,
            "body_sha256": hashlib.sha256(payload_bytes).hexdigest(),
            "log_record_id": record.log_id,
            "reconciliation_run_id": run_id,
        }

    def _record_success(
        self,
        settings: SourceReconciliation,
        window: Window,
        counts: Mapping[str, Any],
        stats: QueryStats,
        elapsed: float,
    ) -> None:
        log.info(
            "reconciliation.run_succeeded",
            run_id=counts["run_id"],
            source=settings.source,
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            rows_scanned=counts["rows_scanned"],
            gaps_filled=counts["gaps_filled"],
            rows_retracted=counts["rows_retracted"],
            pushes_without_log=counts["pushes_without_log"],
            push_ids_without_log=counts["push_ids_without_log"],
            query_id=stats.query_id,
            bytes_scanned=stats.bytes_scanned,
            elapsed_seconds=round(elapsed, 3),
        )
        if self.metrics is not None:
            self.metrics.record_success(
                settings.source,
                gaps_filled=counts["gaps_filled"],
                rows_retracted=counts["rows_retracted"],
                bytes_scanned=stats.bytes_scanned,
                window_end=window.end,
            )

    async def _fail(self, run_id: int, source: str, error: str, query_id: str | None) -> None:
        values = {"error": error[:MAX_ERROR_CHARS], "finished_at": self.clock()}
        if query_id is not None:
            values["query_id"] = query_id
        async with self.database.transaction() as session:
            recorded = await RunRepository(session).finish(
                run_id, owner=self.owner, status=RunStatus.FAILED, values=values
            )
        log.error("reconciliation.run_failed", run_id=run_id, source=source, error=error[:MAX_ERROR_CHARS], query_id=query_id, recorded=recorded)
        if self.metrics is not None:
            self.metrics.record_failure(source)


async def _both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Await two awaitables concurrently; raise the first one's error after both have finished."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for outcome in results:
        if isinstance(outcome, BaseException):
            raise outcome
    return results[0], results[1]  # type: ignore[return-value]


def match_key(log_id: str) -> str:
    """Return the idempotency key of the reconciliation row of a log record under the `match` strategy."""
    return f"log:{log_id}"


class _LeaseKeeper:
    """Renews a run's lease in the background and remembers when it was lost."""

    def __init__(self, reconciler: Reconciler, run_id: int) -> None:
        self.reconciler = reconciler
        self.run_id = run_id
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_forever(), name=f"reconciliation-lease-{self.run_id}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def raise_if_lost(self) -> None:
        if self.lost:
            raise LeaseLostError(f"Run {self.run_id} lost its lease; another process took it over.")

    async def _renew_forever(self) -> None:
        reconciler = self.reconciler
        while True:
            await asyncio.sleep(reconciler.renew_every.total_seconds())
            try:
                async with reconciler.database.transaction() as session:
                    renewed = await RunRepository(session).renew_lease(
                        self.run_id, owner=reconciler.owner, lease_until=reconciler.clock() + reconciler.lease_duration
                    )
            except Exception as exc:
                # The next renewal tries again; the lease lasts several renewal intervals.
                log.warning("reconciliation.lease_renewal_failed", run_id=self.run_id, error=f"{type(exc).__name__}: {exc}")
                continue
            if not renewed:
                self.lost = True
                log.warning("reconciliation.lease_lost", run_id=self.run_id, owner=reconciler.owner)
                return
