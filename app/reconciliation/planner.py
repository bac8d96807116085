"""Decide what one run writes: merge-join log records with pushed events, subject by subject.

The log query and the ledger read both come ordered by (subject, occurred_at,
id), and a missing subject sorts first as the empty string. Both streams are
therefore walked once side by side, with one subject's records in memory at a
time.
What a planner keeps for the write phase is the gaps (log records to insert)
and the ids of matched log records (to retract rows a late push made
unnecessary), never the whole window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime

from app.db.engine import Database
from app.reconciliation.config import SourceReconciliation
from app.reconciliation.engines.base import LogRecord
from app.reconciliation.errors import LogOrderError
from app.reconciliation.matching import MatchRules, Occurrence, match_occurrences
from app.reconciliation.repository import LedgerRepository, PushedRow
from app.reconciliation.windows import Window

# Unmatched pushes named in the run's log line; the run record keeps only their count.
REPORTED_PUSH_IDS = 20


@dataclass
class Plan:
    """The outcome of reading one window, before anything is written."""

    gaps: list[LogRecord] = field(default_factory=list)
    matched_log_ids: set[str] = field(default_factory=set)
    pushes_without_log: int = 0
    push_ids_without_log: list[int] = field(default_factory=list)

    def report_push(self, push: PushedRow) -> None:
        self.pushes_without_log += 1
        if len(self.push_ids_without_log) < REPORTED_PUSH_IDS:
            self.push_ids_without_log.append(push.id)


class PushStream:
    """Pushed and API events of one source and time range, in the log query's order.

    The rows come from one server-side cursor in a read-only transaction that
    opens on the first read and stays open until `close`, which the planner's
    caller must await.
    """

    def __init__(
        self,
        database: Database,
        source: str,
        start: datetime,
        end: datetime,
        hint_pointers: Mapping[str, str | None] | None = None,
    ) -> None:
        self._database = database
        self._source = source
        self._start = start
        self._end = end
        self._hint_pointers = hint_pointers
        self._buffer: deque[PushedRow] = deque()
        self._resources = AsyncExitStack()
        self._chunks: AsyncIterator[list[PushedRow]] | None = None
        self._exhausted = False

    async def _read_chunk(self) -> None:
        if self._chunks is None:
            session = await self._resources.enter_async_context(self._database.transaction())
            self._chunks = LedgerRepository(session).stream_pushed(
                self._source, self._start, self._end, self._hint_pointers
            )
        chunk = await anext(self._chunks, None)
        if chunk is None:
            self._exhausted = True
        else:
            self._buffer.extend(chunk)

    async def _fill(self) -> bool:
        """Read the next chunk when the buffer is empty; return whether a row is available."""
        while not self._buffer and not self._exhausted:
            await self._read_chunk()
        return bool(self._buffer)

    async def prefetch(self, max_rows: int) -> None:
        """Read chunks ahead until at least `max_rows` rows are buffered or the rows run out."""
        while len(self._buffer) < max_rows and not self._exhausted:
            await self._read_chunk()

    async def close(self) -> None:
        await self._resources.aclose()

    async def take(self, subject_key: str) -> tuple[list[PushedRow], list[PushedRow]]:
        """Return the rows of `subject_key`, and the rows of earlier subjects skipped on the way."""
        skipped: list[PushedRow] = []
        taken: list[PushedRow] = []
        while await self._fill():
            head = self._buffer[0]
            if head.subject_key < subject_key:
                skipped.append(self._buffer.popleft())
            elif head.subject_key == subject_key:
                taken.append(self._buffer.popleft())
            else:
                break
        return taken, skipped

    async def rest(self) -> list[PushedRow]:
        """Return a chunk of the remaining rows; an empty list at the end."""
        if not await self._fill():
            return []
        chunk = list(self._buffer)
        self._buffer.clear()
        return chunk


class MatchPlanner:
    """Plans a `match` run: unmatched log records inside the window become gaps.

    Log records and pushes outside the window (its context margins) take part
    in the matching, so a pair that crosses the window's edge is seen from
    both neighbouring windows, but only records inside the window are planned.
    """

    def __init__(self, settings: SourceReconciliation, window: Window, pushes: PushStream) -> None:
        self.settings = settings
        self.window = window
        self.pushes = pushes
        self.plan = Plan()
        self.rules = MatchRules(
            tolerance=settings.tolerance,
            transaction_tolerance=settings.transaction_tolerance,
            trust_transaction_id=settings.trust_transaction_id,
        )
        self._subject: str | None = None
        self._group: list[LogRecord] = []

    def _inside(self, moment: datetime) -> bool:
        return self.window.start <= moment < self.window.end

    async def add(self, batch: Sequence[LogRecord]) -> None:
        """Consume one batch of log records in the engine's order."""
        for record in batch:
            key = record.subject or ""
            if self._subject is not None and key < self._subject:
                raise LogOrderError(
                    f"The log query returned subject {key!r} after {self._subject!r}; the mapping's SQL must end "
                    "with ORDER BY subject NULLS FIRST, occurred_at, log_id."
                )
            if key != self._subject:
                await self._flush()
                self._subject = key
            self._group.append(record)

    async def finish(self) -> Plan:
        """Match the last subject and count the pushes of subjects without any log record."""
        await self._flush()
        while chunk := await self.pushes.rest():
            self._report_unmatched(chunk)
        return self.plan

    async def _flush(self) -> None:
        if self._subject is None:
            return
        pushes, skipped = await self.pushes.take(self._subject)
        self._report_unmatched(skipped)
        self._match(self._subject, self._group, pushes)
        self._group = []

    def _report_unmatched(self, pushes: Sequence[PushedRow]) -> None:
        for push in pushes:
            if self._inside(push.occurred_at):
                self.plan.report_push(push)

    def _match(self, subject: str, records: Sequence[LogRecord], pushes: Sequence[PushedRow]) -> None:
        logs = [
            Occurrence(
                id=record.log_id,
                subject=subject,
                event_type=record.event_type,
                occurred_at=record.occurred_at,
                transaction_id=record.transaction_id,
                session_id=record.session_id,
                client_id=record.client_id,
            )
            for record in records
        ]
        pushed = [
            Occurrence(
                id=str(push.id),
                subject=subject,
                event_type=push.event_type,
                occurred_at=push.occurred_at,
                transaction_id=push.transaction_id,
                session_id=push.session_id,
                client_id=push.client_id,
            )
            for push in pushes
        ]
        result = match_occurrences(logs, pushed, self.rules)

        by_log_id = {record.log_id: record for record in records}
        for log_id in result.unmatched_logs:
            record = by_log_id[log_id]
            if self._inside(record.occurred_at):
                self.plan.gaps.append(record)
        for pair in result.pairs:
            if self._inside(by_log_id[pair.log_id].occurred_at):
                self.plan.matched_log_ids.add(pair.log_id)
        push_by_id = {str(push.id): push for push in pushes}
        self._report_unmatched([push_by_id[push_id] for push_id in result.unmatched_pushes])


class KeyPlanner:
    """Plans a `key` run: log records carry the idempotency key the push carried.

    A log record is a gap when no ledger row has its key. Pushes of the window
    whose key no log record carries are reported.
    """

    def __init__(self, database: Database, source: str, pushes: PushStream) -> None:
        self.database = database
        self.source = source
        self.pushes = pushes
        self.plan = Plan()
        self._log_keys: set[str] = set()

    async def add(self, batch: Sequence[LogRecord]) -> None:
        keyed = {record_key(record): record for record in batch if record_key(record) not in self._log_keys}
        self._log_keys.update(keyed)
        if not keyed:
            return
        async with self.database.transaction() as session:
            present = await LedgerRepository(session).existing_keys(self.source, list(keyed))
        self.plan.gaps.extend(record for key, record in keyed.items() if key not in present)

    async def finish(self) -> Plan:
        while chunk := await self.pushes.rest():
            for push in chunk:
                if push.idempotency_key not in self._log_keys:
                    self.plan.report_push(push)
        return self.plan


def record_key(record: LogRecord) -> str:
    """Return the idempotency key a `key` run stores a log record under."""
    return record.idempotency_key or record.log_id
