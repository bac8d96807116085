"""Land an Auth0 log stream on disk exactly as EventBridge and Firehose put it on S3.

Each log record is wrapped in the EventBridge envelope of the Auth0 partner
event source (`detail-type` "Auth0 log", `detail = {log_id, data}`) and
written as one line of gzip NDJSON, newline after every record. Records are
buffered in arrival order into objects named like Firehose's
(`<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>.gz`) under a `dt=YYYY-MM-DD/` prefix.

Firehose evaluates the `!{timestamp:...}` prefix with the approximate arrival
time of the oldest record in the object (Amazon Data Firehose developer
guide, "Custom Prefixes for Amazon S3 Objects"). This writer does the same,
so an object opened just before midnight lands in that day's partition even
when its later records arrived after midnight. A record whose `date` is early
on day D can therefore sit in partition D-1, and one from late on day D in
partition D+1. NOTE: the guide does not say which time the object name's
timestamp is taken from, so this writer uses the same oldest arrival time.

An object is closed when it contains `records_per_file` records or when a
record arrives `buffer_seconds` after the object's oldest record. The two
limits imitate Firehose's size and interval buffering hints. The interval
defaults to 300 s and may be set up to 900 s (Firehose API reference,
`BufferingHints`). A query for the window starting at T must therefore scan
partitions from the date of T minus the buffer interval, not from the date of
T. Files are written in closing order, and each file's modification time is
set to its closing time.

A redelivered record (Auth0 and EventBridge both deliver at least once) is
written again in a later object, with a new EventBridge `id`, arriving at least
`buffer_seconds` after the first copy.
"""

from __future__ import annotations

import gzip
import heapq
import os
import random
import uuid
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

__all__ = ["WriteSummary", "WrittenFile", "write_log_stream"]

# Account and region of the sample envelope, which belong to no real AWS account.
DEFAULT_ACCOUNT = "111122223333"
DEFAULT_REGION = "eu-west-1"
MAX_REDELIVERY_EXTRA = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """One gzip NDJSON object as Firehose would have put it."""

    path: Path
    partition: date
    lines: int
    first_arrival: datetime
    closed_at: datetime


@dataclass(frozen=True)
class WriteSummary:
    """Counts and objects that `write_log_stream` wrote under `root`.

    `records` counts input records, `redeliveries` the second copies, and
    `lines_per_partition` every line, copies included, per `dt=` day.
    `files` lists the objects in the order they were closed.
    """

    root: Path
    records: int
    redeliveries: int
    lines_per_partition: dict[date, int]
    files: list[WrittenFile] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return self.records + self.redeliveries


def write_log_stream(
    records_with_arrival: Iterable[tuple[datetime, dict[str, Any]]],
    root: Path,
    *,
    tenant: str = "demo",
    duplicate_ids: Collection[str] = frozenset(),
    duplicate_rate: float = 0.0,
    records_per_file: int = 500,
    buffer_seconds: float = 300.0,
    stream_name: str = "auth0-logs",
    account: str = DEFAULT_ACCOUNT,
    region: str = DEFAULT_REGION,
    compresslevel: int = 6,
    seed: int = 0,
) -> WriteSummary:
    """Write (arrival, log record) pairs under `root` as Firehose delivers them.

    The pairs must come in arrival order (`Traffic.log_records` and
    `iter_log_records` yield them so), and arrival times must be
    timezone-aware UTC; otherwise ValueError is raised. Records whose
    `log_id` is in `duplicate_ids`, plus a `duplicate_rate` share of the
    others drawn at random, are delivered twice. Envelope ids and redelivery
    delays come from `random.Random(seed)`, so the output is the same for the
    same input and seed. `compresslevel` is the gzip level (1 to 9). Existing
    files under `root` are left alone.
    """
    if records_per_file < 1:
        raise ValueError(f"records_per_file must be at least 1, got {records_per_file!r}.")
    if buffer_seconds <= 0:
        raise ValueError(f"buffer_seconds must be positive, got {buffer_seconds!r}.")
    if not 0.0 <= duplicate_rate <= 1.0:
        raise ValueError(f"duplicate_rate must be between 0 and 1, got {duplicate_rate!r}.")

    rng = random.Random(seed)
    source = f"aws.partner/auth0.com/{tenant}-{_random_uuid(rng)}/auth0.logs"
    writer = _ObjectWriter(
        rng, Path(root), stream_name, records_per_file, timedelta(seconds=buffer_seconds),
        compresslevel,
    )
    envelope = _Enveloper(rng, source, account, region)
    buffer_interval = timedelta(seconds=buffer_seconds)

    # Second copies wait here, ordered by their own arrival time, until the stream reaches it.
    pending: list[tuple[datetime, int, dict[str, Any]]] = []
    records = 0
    previous: datetime | None = None

    for arrival, record in records_with_arrival:
        _check_arrival(arrival, previous, record)
        arrival = arrival.astimezone(UTC)
        previous = arrival
        while pending and pending[0][0] <= arrival:
            redelivered_at, _, copy = heapq.heappop(pending)
            writer.add(redelivered_at, envelope.wrap(copy, redelivered_at))
        writer.add(arrival, envelope.wrap(record, arrival))
        records += 1

        if record["log_id"] in duplicate_ids or rng.random() < duplicate_rate:
            extra = timedelta(seconds=rng.uniform(1.0, MAX_REDELIVERY_EXTRA.total_seconds()))
            heapq.heappush(pending, (arrival + buffer_interval + extra, records, record))

    while pending:
        redelivered_at, _, copy = heapq.heappop(pending)
        writer.add(redelivered_at, envelope.wrap(copy, redelivered_at))
    writer.close()

    lines_per_partition: Counter[date] = Counter()
    for written in writer.files:
        lines_per_partition[written.partition] += written.lines
    return WriteSummary(
        root=Path(root),
        records=records,
        redeliveries=writer.lines - records,
        lines_per_partition=dict(sorted(lines_per_partition.items())),
        files=writer.files,
    )


def _check_arrival(arrival: datetime, previous: datetime | None, record: dict[str, Any]) -> None:
    if arrival.tzinfo is None:
        raise ValueError(
            f"Arrival time {arrival.isoformat()} of log {record.get('log_id')!r} has no time "
            "zone; pass timezone-aware UTC datetimes."
        )
    if previous is not None and arrival < previous:
        raise ValueError(
            f"Log {record.get('log_id')!r} arrives at {arrival.isoformat()}, before the previous "
            f"record ({previous.isoformat()}); sort the records by arrival time first."
        )
    if "log_id" not in record:
        raise ValueError(f"A log record arriving at {arrival.isoformat()} has no log_id.")


def _random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Enveloper:
    """Wraps log records the way the Auth0 EventBridge partner source emits them."""

    def __init__(self, rng: random.Random, source: str, account: str, region: str) -> None:
        self.rng = rng
        self.source = source
        self.account = account
        self.region = region

    def wrap(self, record: dict[str, Any], arrival: datetime) -> bytes:
        # EventBridge stamps the event when Auth0 puts it: after the log's `date`, shortly
        # before Firehose receives it.
        put_at = arrival - timedelta(seconds=self.rng.uniform(0.0, 1.5))
        if "date" in record:
            put_at = max(put_at, datetime.fromisoformat(record["date"]))
        envelope = {
            "version": "0",
            "id": _random_uuid(self.rng),
            "detail-type": "Auth0 log",
            "source": self.source,
            "account": self.account,
            "time": put_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            "detail": {"log_id": record["log_id"], "data": record},
        }
        return orjson.dumps(envelope) + b"\n"


class _ObjectWriter:
    """Buffers envelope lines into objects and writes each one when it closes."""

    def __init__(self, rng: random.Random, root: Path, stream_name: str,
                 records_per_file: int, buffer_interval: timedelta, compresslevel: int) -> None:
        self.rng = rng
        self.root = root
        self.stream_name = stream_name
        self.records_per_file = records_per_file
        self.buffer_interval = buffer_interval
        self.compresslevel = compresslevel
        self.files: list[WrittenFile] = []
        self.lines = 0
        self._buffer: list[bytes] = []
        self._oldest: datetime | None = None

    def add(self, arrival: datetime, line: bytes) -> None:
        if self._oldest is not None and arrival >= self._oldest + self.buffer_interval:
            self._flush(self._oldest + self.buffer_interval)
        if self._oldest is None:
            self._oldest = arrival
        self._buffer.append(line)
        self.lines += 1
        if len(self._buffer) >= self.records_per_file:
            self._flush(arrival)

    def close(self) -> None:
        if self._oldest is not None:
            self._flush(self._oldest + self.buffer_interval)

    def _flush(self, closed_at: datetime) -> None:
        oldest = self._oldest
        assert oldest is not None
        partition = oldest.date()
        directory = self.root / f"dt={partition.isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        name = (f"{self.stream_name}-1-{oldest.strftime('%Y-%m-%d-%H-%M-%S')}-"
                f"{_random_uuid(self.rng)}.gz")
        path = directory / name
        with path.open("wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                               compresslevel=self.compresslevel,
                               mtime=int(closed_at.timestamp())) as compressed:
                compressed.write(b"".join(self._buffer))
        os.utime(path, (closed_at.timestamp(), closed_at.timestamp()))
        self.files.append(WrittenFile(path, partition, len(self._buffer), oldest, closed_at))
        self._buffer = []
        self._oldest = None
