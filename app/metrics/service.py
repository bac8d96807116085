"""Metric series: validate the window, run the aggregate queries, fill empty buckets with zeros."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Origin
from app.errors import NotFoundError, UnprocessableError
from app.ingest.extract import EARLIEST_EVENT_TIME, parse_timestamp
from app.metrics.definitions import MetricDefinition, MetricsConfig
from app.metrics.intervals import Interval, align_down, bucket_starts, next_bucket
from app.metrics.repository import BucketCount, MetricRepository, SeriesWindow

MAX_GROUP_LIMIT = 1000
DEFAULT_GROUP_LIMIT = 10
# Series bounds: no event before the Unix epoch is stored, and the upper bound leaves
# room for a month of bucket arithmetic below datetime's year-9999 maximum.
EARLIEST_SERIES_TIME = EARLIEST_EVENT_TIME
LATEST_SERIES_TIME = datetime(9999, 1, 1, tzinfo=UTC)
_RANGE_ADVICE = (
    f"send start and end between {EARLIEST_SERIES_TIME:%Y-%m-%dT%H:%M:%SZ} and {LATEST_SERIES_TIME:%Y-%m-%dT%H:%M:%SZ}."
)
# Response keys of each origin's share of a bucket.
ORIGIN_KEYS = {Origin.PUSH: "pushed", Origin.RECONCILIATION: "reconciled", Origin.API: "api"}


@dataclass(frozen=True)
class SeriesQuery:
    """The parameters of `GET /v1/metrics/{name}` as received."""

    name: str
    start: str
    end: str
    interval: Interval
    subject: str | None = None
    group_by: str | None = None
    limit: int | None = None


def get_definition(config: MetricsConfig, name: str) -> MetricDefinition:
    definition = config.definitions.get(name)
    if definition is None:
        known = ", ".join(sorted(config.definitions)) or "none are configured"
        raise NotFoundError(
            f"Metric {name[:64]!r} is not defined; GET /v1/metrics lists the metrics ({known}).",
            code="metric_not_found",
        )
    return definition


async def get_series(
    session: AsyncSession, config: MetricsConfig, query: SeriesQuery, *, max_buckets: int
) -> dict[str, Any]:
    """Return the metric's buckets over [start, end) with per-origin counts and totals."""
    definition = get_definition(config, query.name)
    start, end = _parse_window(query)
    starts = bucket_starts(start, end, query.interval, max_buckets)
    if starts is None:
        raise UnprocessableError(
            f"The range {_iso(start)} to {_iso(end)} has more than {max_buckets} {query.interval.value} buckets; "
            "shorten the range or use a longer interval.",
            code="too_many_buckets",
            max_buckets=max_buckets,
        )
    _check_subject_options(definition, query)

    window = SeriesWindow(definition, start, end, query.interval, subject=query.subject)
    repository = MetricRepository(session)
    body: dict[str, Any] = {
        "metric": definition.name,
        "interval": query.interval.value,
        "start": _iso(start),
        "end": _iso(end),
    }
    if query.subject is not None:
        body["subject"] = query.subject
    overall = await repository.count_by_bucket(window)
    buckets, totals = _fill(starts, end, query.interval, overall)
    if query.group_by is None:
        body["buckets"] = buckets
        body["totals"] = totals
        return body

    limit = query.limit or DEFAULT_GROUP_LIMIT
    subjects = await repository.top_subjects(window, limit)
    counts = await repository.count_by_subject_bucket(window, subjects)
    by_subject: dict[str, list[BucketCount]] = {subject: [] for subject in subjects}
    for count in counts:
        by_subject[count.subject or ""].append(count)
    series = []
    for subject in subjects:
        subject_buckets, subject_totals = _fill(starts, end, query.interval, by_subject[subject])
        series.append({"subject": subject, "buckets": subject_buckets, "totals": subject_totals})
    body["group_by"] = "subject"
    body["limit"] = limit
    body["series"] = series
    body["totals"] = totals
    return body


def _parse_window(query: SeriesQuery) -> tuple[datetime, datetime]:
    start = _parse_instant("start", query.start)
    end = _parse_instant("end", query.end)
    # The range check comes first, so the alignment arithmetic below cannot overflow.
    for name, value in (("start", start), ("end", end)):
        if not EARLIEST_SERIES_TIME <= value <= LATEST_SERIES_TIME:
            raise UnprocessableError(
                f"{name} {_iso(value)} is out of range; {_RANGE_ADVICE}",
                code="invalid_parameter",
                parameter=name,
            )
    if start >= end:
        raise UnprocessableError(
            f"start ({_iso(start)}) must be before end ({_iso(end)}); the range is half-open [start, end).",
            code="invalid_parameter",
            parameter="start",
        )
    for name, value in (("start", start), ("end", end)):
        aligned = align_down(value, query.interval)
        if aligned != value:
            after = next_bucket(aligned, query.interval)
            raise UnprocessableError(
                f"{name} {_iso(value)} is not at the start of a {query.interval.value} bucket in UTC; "
                f"use {_iso(aligned)} or {_iso(after)}.",
                code="unaligned_range",
                parameter=name,
            )
    return start, end


def _parse_instant(name: str, text: str) -> datetime:
    value = parse_timestamp(text)
    if value is not None:
        return value
    if _has_offset(text):
        # Parsed, but converting it to UTC left datetime's range (e.g. year 1 with offset +23:59).
        raise UnprocessableError(
            f"{name} {text[:64]!r} is out of range; {_RANGE_ADVICE}",
            code="invalid_parameter",
            parameter=name,
        )
    raise UnprocessableError(
        f"{name} {text[:64]!r} is invalid: send an ISO 8601 date-time with a UTC offset or Z, "
        "e.g. 2026-12-01T00:00:00Z.",
        code="invalid_parameter",
        parameter=name,
    )


def _has_offset(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def _check_subject_options(definition: MetricDefinition, query: SeriesQuery) -> None:
    if query.subject is not None and "\x00" in query.subject:
        raise UnprocessableError(
            "subject contains a NUL character (\\u0000), which no stored subject can contain; remove it.",
            code="invalid_parameter",
            parameter="subject",
        )
    if (query.subject is not None or query.group_by is not None) and not definition.by_subject:
        parameter = "subject" if query.subject is not None else "group_by"
        raise UnprocessableError(
            f"Metric {definition.name!r} is not defined per subject, so {parameter} is not allowed; "
            f"set by_subject = true in [metrics.{definition.name}] to allow it.",
            code="invalid_parameter",
            parameter=parameter,
        )
    if query.subject is not None and query.group_by is not None:
        raise UnprocessableError(
            "subject and group_by=subject cannot be combined; send one of them.",
            code="invalid_parameter",
            parameter="group_by",
        )
    if query.limit is not None and query.group_by is None:
        raise UnprocessableError(
            "limit sets the number of subjects returned with group_by=subject; add group_by=subject or remove limit.",
            code="invalid_parameter",
            parameter="limit",
        )


def _fill(
    starts: list[datetime], end: datetime, interval: Interval, counts: Iterable[BucketCount]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Lay the counts onto every bucket in range, zeros where the database returned none."""
    by_bucket: dict[datetime, dict[str, int]] = {start: _zero() for start in starts}
    for count in counts:
        shares = by_bucket.get(count.bucket)
        key = ORIGIN_KEYS.get(count.origin)
        if shares is None or key is None:
            continue
        shares[key] += count.count
    buckets = []
    totals = _zero()
    for start in starts:
        shares = by_bucket[start]
        bucket_end = min(next_bucket(start, interval), end)
        buckets.append({"start": _iso(start), "end": _iso(bucket_end), **_with_value(shares)})
        for key, value in shares.items():
            totals[key] += value
    return buckets, _with_value(totals)


def _zero() -> dict[str, int]:
    return {key: 0 for key in ORIGIN_KEYS.values()}


def _with_value(shares: Mapping[str, int]) -> dict[str, int]:
    return {"value": sum(shares.values()), **shares}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
