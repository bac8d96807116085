"""SQL for metric series: counts per bucket and origin, computed by the database.

Bucket expressions per dialect:

- PostgreSQL: `date_bin(stride, occurred_at, Monday 2001-01-01 00:00 UTC)` for hours, days
  and ISO weeks, and `date_trunc('month', occurred_at AT TIME ZONE 'UTC')` for months.
- SQLite: `occurred_at` is naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff`. The text is cut to
  whole seconds before `strftime`/`datetime`, because SQLite rounds fractions to
  milliseconds and would move 23:59:59.9999995 into the next day. The week start is
  `datetime(t, 'weekday 0', '-6 days', 'start of day')`: forward to Sunday (or stay on
  it), then back to that ISO week's Monday.

The WHERE clause matches the index `(source, event_type, occurred_at, origin)`, so PostgreSQL
reads a series without payload filters from the index alone on PostgreSQL once
the table is vacuumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, func, literal, literal_column, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from app.db.models import Event
from app.metrics.definitions import MetricDefinition, PayloadFilter
from app.metrics.intervals import Interval

# date_bin (PostgreSQL 14+) is integer arithmetic on timestamptz, measurably cheaper per row than
# date_trunc after a time zone conversion. The origin is a Monday midnight UTC, so weekly bins are ISO weeks.
_PG_STRIDES = {
    Interval.HOUR: "interval '1 hour'",
    Interval.DAY: "interval '1 day'",
    Interval.WEEK: "interval '7 days'",
}
_PG_BIN_ORIGIN = "timestamptz '2001-01-01 00:00:00+00'"

_SQLITE_FORMATS = {
    Interval.HOUR: "%Y-%m-%d %H:00:00",
    Interval.DAY: "%Y-%m-%d 00:00:00",
    Interval.MONTH: "%Y-%m-01 00:00:00",
}


@dataclass(frozen=True)
class BucketCount:
    """The number of events in one bucket with one origin, for one subject when grouped."""

    bucket: datetime
    origin: str
    count: int
    subject: str | None = None


@dataclass(frozen=True)
class SeriesWindow:
    """The metric, half-open range [start, end), interval and optional subject of one series."""

    definition: MetricDefinition
    start: datetime
    end: datetime
    interval: Interval
    subject: str | None = None


class MetricRepository:
    """Aggregate queries over the events ledger for metric series."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.bind.dialect.name

    async def count_by_bucket(self, window: SeriesWindow) -> list[BucketCount]:
        """Return event counts grouped by bucket and origin."""
        rows = (await self.session.execute(self.series_statement(window))).all()
        return [BucketCount(self._to_datetime(row.bucket), row.origin, row.events) for row in rows]

    async def top_subjects(self, window: SeriesWindow, limit: int) -> list[str]:
        """Return up to `limit` subjects with the most events, most first; ties by subject."""
        total = func.count().label("total")
        statement = (
            select(Event.subject, total)
            .where(*self._conditions(window), Event.subject.is_not(None))
            .group_by(Event.subject)
            .order_by(total.desc(), Event.subject)
            .limit(limit)
        )
        return [row.subject for row in (await self.session.execute(statement)).all()]

    async def count_by_subject_bucket(self, window: SeriesWindow, subjects: Sequence[str]) -> list[BucketCount]:
        """Return event counts grouped by subject, bucket and origin for the given subjects."""
        if not subjects:
            return []
        bucket = self._bucket_expression(window.interval)
        statement = (
            select(Event.subject, bucket.label("bucket"), Event.origin, func.count().label("events"))
            .where(*self._conditions(window), Event.subject.in_(list(subjects)))
            .group_by(Event.subject, bucket, Event.origin)
        )
        rows = (await self.session.execute(statement)).all()
        return [BucketCount(self._to_datetime(row.bucket), row.origin, row.events, row.subject) for row in rows]

    def series_statement(self, window: SeriesWindow) -> Any:
        """Return the statement behind `count_by_bucket`, for EXPLAIN in benchmarks."""
        bucket = self._bucket_expression(window.interval)
        return (
            select(bucket.label("bucket"), Event.origin, func.count().label("events"))
            .where(*self._conditions(window))
            .group_by(bucket, Event.origin)
        )

    def _conditions(self, window: SeriesWindow) -> list[ColumnElement[bool]]:
        definition = window.definition
        conditions: list[ColumnElement[bool]] = [
            Event.source == definition.source,
            Event.event_type.in_(list(definition.event_types)),
            Event.occurred_at >= window.start,
            Event.occurred_at < window.end,
        ]
        if window.subject is not None:
            conditions.append(Event.subject == window.subject)
        conditions.extend(self._filter_condition(payload_filter) for payload_filter in definition.filters)
        return conditions

    def _bucket_expression(self, interval: Interval) -> ColumnElement[Any]:
        # The unit and format are literal SQL (from a closed enum), so the SELECT and GROUP BY
        # expressions are textually identical; PostgreSQL would not match two bind parameters.
        if self.dialect == "postgresql":
            if interval is Interval.MONTH:
                utc_time = func.timezone(literal_column("'UTC'"), Event.occurred_at)
                return func.date_trunc(literal_column("'month'"), utc_time)
            return func.date_bin(literal_column(_PG_STRIDES[interval]), Event.occurred_at, literal_column(_PG_BIN_ORIGIN))
        seconds = func.substr(Event.occurred_at, 1, 19)
        if interval is Interval.WEEK:
            return func.datetime(
                seconds, literal_column("'weekday 0'"), literal_column("'-6 days'"), literal_column("'start of day'")
            )
        return func.strftime(literal_column(f"'{_SQLITE_FORMATS[interval]}'"), seconds)

    def _filter_condition(self, payload_filter: PayloadFilter) -> ColumnElement[bool]:
        if self.dialect == "postgresql":
            path = bindparam(None, list(payload_filter.tokens), type_=ARRAY(Text))
            value = Event.payload.op("#>", return_type=JSONB)(path)
            matches = [value == bindparam(None, item, type_=JSONB) for item in payload_filter.values]
        else:
            json_path = _sqlite_json_path(payload_filter.tokens)
            matches = [_sqlite_matches(json_path, item) for item in payload_filter.values]
        return matches[0] if len(matches) == 1 else or_(*matches)

    @staticmethod
    def _to_datetime(value: datetime | str) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_json_path(tokens: Sequence[str]) -> str:
    """Translate pointer tokens to a SQLite JSON path; all-digit tokens select array elements."""
    parts = ["$"]
    for token in tokens:
        if token.isdigit():
            parts.append(f"[{int(token)}]")
        else:
            escaped = token.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'."{escaped}"')
    return "".join(parts)


def _sqlite_matches(json_path: str, expected: str | int | bool) -> ColumnElement[bool]:
    """Compare by JSON type and value, as PostgreSQL's jsonb equality does."""
    path = literal(json_path, String)
    json_type = func.json_type(Event.payload, path)
    if isinstance(expected, bool):
        return json_type == ("true" if expected else "false")
    extracted = func.json_extract(Event.payload, path)
    if isinstance(expected, int):
        return and_(json_type.in_(["integer", "real"]), extracted == expected)
    return and_(json_type == "text", extracted == expected)
