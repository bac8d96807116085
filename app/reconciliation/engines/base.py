"""The seam the reconciler queries logs through.

A `QueryEngine` runs one mapping's SQL over one window and returns a `LogResult`
whose batches hold `LogRecord`s deduplicated on `log_id` and ordered by
`subject NULLS FIRST, occurred_at, log_id`, so the reconciler can merge-join
them with pushed events subject by subject.

Every mapping's SQL takes four positional `?` parameters, in this order:

1. `dt_from` (``YYYY-MM-DD``): the first arrival partition to scan, the UTC date of
   `start - lead_margin`;
2. `dt_to` (``YYYY-MM-DD``): the last arrival partition to scan, the UTC date of
   `end + lag_margin`;
3. `start`, 4. `end`: the window bounds as ISO 8601 strings in UTC.

Firehose names each S3 object's `dt=` prefix after the arrival time of the oldest
record in the object (AWS, "Custom Prefixes for Amazon S3 Objects"), and one object
collects records for up to its buffer interval (at most 900 s). A record that
occurred just after midnight can therefore sit in the previous day's partition, so
the scan starts `lead_margin` (default 900 s) before `start`. Records delivered
later than `lag_margin` after `end` are missed by that run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import FrozenInstanceError, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.reconciliation.engines.errors import QueryFailedError

if TYPE_CHECKING:
    from app.reconciliation.mappings import LogMapping

# The columns every mapping's SELECT returns, in `LogRecord` field order.
RESULT_COLUMNS = (
    "log_id",
    "event_type",
    "subject",
    "occurred_at",
    "idempotency_key",
    "transaction_id",
    "session_id",
    "client_id",
    "payload",
)
_OPTIONAL_TEXT_COLUMNS = ("subject", "idempotency_key", "transaction_id", "session_id", "client_id")


class LogRecord:
    """One deduplicated log record, mapped to the ledger's vocabulary.

    Instances are immutable and compare by value, payload included. An engine
    may hand over the payload as JSON text (`payload_json`). That text is parsed
    on the first read of `payload` and the result is kept, because most records
    pair with a push and their payload is never read.
    """

    log_id: str
    event_type: str
    subject: str | None
    occurred_at: datetime
    idempotency_key: str | None
    transaction_id: str | None
    session_id: str | None
    client_id: str | None

    def __init__(
        self,
        log_id: str,
        event_type: str,
        subject: str | None,
        occurred_at: datetime,
        idempotency_key: str | None,
        transaction_id: str | None,
        session_id: str | None,
        client_id: str | None,
        payload: dict[str, Any] | None = None,
        *,
        payload_json: str | None = None,
    ) -> None:
        if (payload is None) == (payload_json is None):
            msg = "LogRecord takes exactly one of payload and payload_json."
            raise TypeError(msg)
        # One assignment of the whole __dict__ instead of one per field: records are
        # built by the million, and __setattr__ is blocked to keep them immutable.
        object.__setattr__(
            self,
            "__dict__",
            {
                "log_id": log_id,
                "event_type": event_type,
                "subject": subject,
                "occurred_at": occurred_at,
                "idempotency_key": idempotency_key,
                "transaction_id": transaction_id,
                "session_id": session_id,
                "client_id": client_id,
                "_payload": payload,
                "_payload_json": payload_json,
            },
        )

    @property
    def payload(self) -> dict[str, Any]:
        """The log record as a JSON object, as the mapping's SQL selected it.

        Raises QueryFailedError when the engine's JSON text is invalid or not an object.
        """
        values = self.__dict__
        parsed = values["_payload"]
        if parsed is None:
            parsed = parse_payload(values["_payload_json"], log_id=self.log_id)
            values["_payload"] = parsed
        return parsed

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.log_id,
            self.event_type,
            self.subject,
            self.occurred_at,
            self.idempotency_key,
            self.transaction_id,
            self.session_id,
            self.client_id,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogRecord):
            return NotImplemented
        return self._fields() == other._fields() and self.payload == other.payload

    # The payload dict is part of the value, so records are unhashable, as a frozen
    # dataclass holding a dict is.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        values = (*self._fields(), self.payload)
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(RESULT_COLUMNS, values, strict=True))
        return f"LogRecord({fields})"


# Firehose's largest buffer interval. A delivered object contains records that arrived
# up to this long after the one its `dt=` prefix is named after.
FIREHOSE_MAX_BUFFER = timedelta(seconds=900)


@dataclass(frozen=True)
class LogQuery:
    """One mapping queried over the half-open window `[start, end)` (aware, UTC).

    `lag_margin` extends the scanned arrival partitions past `end`.
    `request_token` is deterministic per (source, window, attempt); Athena uses it as
    the ClientRequestToken, which must be 32 to 128 characters long.
    """

    mapping: LogMapping
    start: datetime
    end: datetime
    lag_margin: timedelta
    request_token: str
    lead_margin: timedelta = FIREHOSE_MAX_BUFFER

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                msg = f"LogQuery.{name} must be timezone-aware, got the naive datetime {value!r}."
                raise ValueError(msg)
        if self.start >= self.end:
            msg = f"LogQuery window is empty: start {self.start} is not before end {self.end}."
            raise ValueError(msg)
        if self.lag_margin < timedelta(0):
            msg = f"LogQuery.lag_margin must not be negative, got {self.lag_margin}."
            raise ValueError(msg)
        if self.lead_margin < timedelta(0):
            msg = f"LogQuery.lead_margin must not be negative, got {self.lead_margin}."
            raise ValueError(msg)

    @property
    def dt_from(self) -> date:
        """The first arrival partition to scan."""
        return (self.start - self.lead_margin).astimezone(UTC).date()

    @property
    def dt_to(self) -> date:
        """The last arrival partition to scan."""
        return (self.end + self.lag_margin).astimezone(UTC).date()

    def partition_dates(self) -> list[date]:
        """List the arrival partitions from `dt_from` through `dt_to`."""
        days = (self.dt_to - self.dt_from).days
        return [self.dt_from + timedelta(days=offset) for offset in range(days + 1)]

    def parameters(self) -> list[str]:
        """Return the SQL parameters `dt_from, dt_to, start, end` as plain strings."""
        return [
            self.dt_from.isoformat(),
            self.dt_to.isoformat(),
            format_instant(self.start),
            format_instant(self.end),
        ]


@dataclass
class QueryStats:
    """Cost and size of one query, filled in while the batches are read."""

    engine: str
    query_id: str | None = None
    bytes_scanned: int | None = None
    rows: int = 0
    elapsed_seconds: float = 0.0


class LogResult(Protocol):
    """A query's records: iterate `batches()` once, then read `stats`."""

    stats: QueryStats

    def batches(self) -> Iterator[list[LogRecord]]: ...


class QueryEngine(Protocol):
    """Runs a mapping's SQL over a window of logs.

    `query_logs` is synchronous and blocks while the query runs. The reconciler
    calls it in a worker thread.
    """

    name: str

    def query_logs(self, query: LogQuery) -> LogResult: ...


def format_instant(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with a `Z` suffix.

    Milliseconds are used when they carry the full value, because Athena's
    timestamps have millisecond precision.
    """
    timespec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def parse_timestamp(value: str) -> datetime:
    """Parse a timestamp rendered by Athena or written as ISO 8601, into aware UTC.

    Athena renders `timestamp with time zone` as ``2024-01-15 10:30:06.123 UTC``.
    The zone is a region name or an offset such as ``+02:00``. Values without a
    zone are taken as UTC.
    """
    text = value.strip()
    zone_text = ""
    date_part, _, rest = text.partition(" ")
    if rest and " " in rest:
        time_part, _, zone_text = rest.partition(" ")
        text = f"{date_part}T{time_part}"
    parsed = datetime.fromisoformat(text)
    if zone_text:
        parsed = parsed.replace(tzinfo=_zone(zone_text))
    elif parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _zone(name: str) -> Any:
    if name in ("UTC", "Z", "GMT"):
        return UTC
    if name[0] in "+-":
        return datetime.fromisoformat(f"2000-01-01T00:00:00{name}").tzinfo
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"Unknown time zone {name!r} in a query result timestamp."
        raise ValueError(msg) from exc


def record_from_row(row: Mapping[str, Any]) -> LogRecord:
    """Build a `LogRecord` from one result row keyed by column name.

    Values may be native (DuckDB) or strings (Athena). Empty strings in the optional
    id columns become None, because Athena's CSV result file writes NULL and the
    empty string alike.
    """
    log_id = row.get("log_id")
    event_type = row.get("event_type")
    occurred_at = row.get("occurred_at")
    if not log_id or not event_type or occurred_at is None or occurred_at == "":
        msg = (
            "A log query returned a row without log_id, event_type or occurred_at "
            f"(log_id={log_id!r}); fix the mapping's SQL to filter such rows out."
        )
        raise QueryFailedError(msg)
    optional = {name: row.get(name) or None for name in _OPTIONAL_TEXT_COLUMNS}
    return LogRecord(
        log_id=str(log_id),
        event_type=str(event_type),
        occurred_at=_as_utc(occurred_at),
        payload=parse_payload(row.get("payload"), log_id=str(log_id)),
        **optional,
    )


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        return parse_timestamp(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_payload(value: Any, *, log_id: str) -> dict[str, Any]:
    """Return a payload column value as a dict: NULL and "" give {}, JSON text is parsed.

    Raises QueryFailedError when the text is not valid JSON or not a JSON object.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        msg = f"The payload of log record {log_id} is not valid JSON: {exc}."
        raise QueryFailedError(msg) from exc
    if not isinstance(parsed, dict):
        msg = (
            f"The payload of log record {log_id} is a JSON {type(parsed).__name__}, "
            "not an object; the engine must render a ROW as a JSON object."
        )
        raise QueryFailedError(msg)
    return parsed
