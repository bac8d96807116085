"""Tests for the Firehose-style writer of the Auth0 log stream."""

from __future__ import annotations

import gzip
import json
import os
import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from app.demo.firehose import WriteSummary, write_log_stream
from app.demo.traffic import Traffic, generate_day, iter_log_records

DAY = date(2024, 1, 15)
SAMPLE = json.loads(
    (Path(__file__).parents[1] / "data" / "auth0" / "eventbridge-log-s.json").read_text()
)
OBJECT_NAME = re.compile(
    r"^auth0-logs-1-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.gz$"
)
SOURCE = re.compile(r"^aws\.partner/auth0\.com/demo-[0-9a-f-]{36}/auth0\.logs$")


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return generate_day(DAY, 400, 21, duplicate_rate=0.02)


@pytest.fixture(scope="module")
def written(traffic: Traffic, tmp_path_factory: pytest.TempPathFactory) -> WriteSummary:
    root = tmp_path_factory.mktemp("firehose")
    return write_log_stream(traffic.log_records, root, duplicate_ids=traffic.duplicates,
                            records_per_file=200, seed=5)


def read_lines(path: Path) -> list[bytes]:
    data = gzip.decompress(path.read_bytes())
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def read_envelopes(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path)]


def parse_date(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def arrival_pairs(*moments: tuple[datetime, str]) -> list[tuple[datetime, dict]]:
    """Build minimal log records arriving at the given times."""
    return [
        (arrival, {"log_id": log_id, "date": (arrival - timedelta(seconds=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"), "type": "s"})
        for arrival, log_id in moments
    ]


def test_files_are_gzip_ndjson_envelopes(written: WriteSummary) -> None:
    assert written.files
    for file in written.files:
        for envelope in read_envelopes(file.path):
            assert set(envelope) == set(SAMPLE)
            assert set(envelope["detail"]) == set(SAMPLE["detail"])
            assert envelope["version"] == "0"
            assert envelope["detail-type"] == "Auth0 log"
            assert SOURCE.match(envelope["source"])
            assert envelope["account"] == SAMPLE["account"]
            assert envelope["region"] == SAMPLE["region"]
            assert envelope["resources"] == []
            assert uuid.UUID(envelope["id"]).version == 4
            assert envelope["detail"]["log_id"] == envelope["detail"]["data"]["log_id"]
            put_at = datetime.strptime(envelope["time"], "%Y-%m-%dT%H:%M:%SZ")
            logged_at = parse_date(envelope["detail"]["data"]["date"]).replace(tzinfo=None)
            assert put_at >= logged_at.replace(microsecond=0)


def test_every_record_written_and_duplicates_twice(traffic: Traffic,
                                                   written: WriteSummary) -> None:
    counts = Counter(envelope["detail"]["log_id"]
                     for file in written.files for envelope in read_envelopes(file.path))

    assert traffic.duplicates
    assert written.records == len(traffic.log_records)
    assert written.redeliveries == len(traffic.duplicates)
    assert written.lines == sum(counts.values())
    for _, record in traffic.log_records:
        expected = 2 if record["log_id"] in traffic.duplicates else 1
        assert counts[record["log_id"]] == expected, record["log_id"]


def test_redelivery_lands_in_later_file(traffic: Traffic, written: WriteSummary) -> None:
    seen: dict[str, tuple[int, str]] = {}
    for index, file in enumerate(written.files):
        for envelope in read_envelopes(file.path):
            log_id = envelope["detail"]["log_id"]
            if log_id in seen:
                first_index, first_id = seen[log_id]
                assert index > first_index
                assert envelope["id"] != first_id
            else:
                seen[log_id] = (index, envelope["id"])


def test_records_keep_their_content(traffic: Traffic, written: WriteSummary) -> None:
    by_log_id = {record["log_id"]: record for _, record in traffic.log_records}

    for file in written.files:
        for envelope in read_envelopes(file.path):
            assert envelope["detail"]["data"] == by_log_id[envelope["detail"]["log_id"]]


def test_partition_and_name_follow_oldest_arrival(written: WriteSummary) -> None:
    for file in written.files:
        match = OBJECT_NAME.match(file.path.name)
        assert match, file.path.name
        assert match.group(1) == file.first_arrival.strftime("%Y-%m-%d-%H-%M-%S")
        assert file.partition == file.first_arrival.date()
        assert file.path.parent.name == f"dt={file.partition.isoformat()}"
        assert file.path.parent.parent == written.root


def test_some_records_land_in_next_day_partition(written: WriteSummary) -> None:
    next_day = [envelope for file in written.files if file.partition > DAY
                for envelope in read_envelopes(file.path)]

    assert any(parse_date(envelope["detail"]["data"]["date"]).date() == DAY
               for envelope in next_day)


def test_lines_per_partition_match_files(written: WriteSummary) -> None:
    on_disk: Counter[date] = Counter()
    for directory in written.root.iterdir():
        day = date.fromisoformat(directory.name.removeprefix("dt="))
        for path in directory.glob("*.gz"):
            on_disk[day] += len(read_lines(path))

    assert written.lines_per_partition == dict(on_disk)
    assert sorted(path for path in written.root.rglob("*.gz")) == sorted(
        file.path for file in written.files)


def test_files_closed_in_arrival_order(written: WriteSummary) -> None:
    closed = [file.closed_at for file in written.files]
    opened = [file.first_arrival for file in written.files]

    assert closed == sorted(closed)
    assert opened == sorted(opened)
    for file in written.files:
        assert 1 <= file.lines <= 200
        assert timedelta(0) <= file.closed_at - file.first_arrival <= timedelta(seconds=300)
        assert os.stat(file.path).st_mtime == pytest.approx(file.closed_at.timestamp())


def test_midnight_object_keeps_oldest_partition(tmp_path: Path) -> None:
    """An object opened before midnight also contains a record that arrived after it."""
    before = datetime(2024, 1, 15, 23, 59, 0, tzinfo=UTC)
    pairs = arrival_pairs((before, "1"), (before + timedelta(minutes=2), "2"),
                          (before + timedelta(minutes=6), "3"))

    summary = write_log_stream(pairs, tmp_path, seed=1)

    assert [file.partition for file in summary.files] == [DAY, DAY + timedelta(days=1)]
    assert [envelope["detail"]["log_id"] for envelope in read_envelopes(summary.files[0].path)] \
        == ["1", "2"]
    assert summary.lines_per_partition == {DAY: 2, DAY + timedelta(days=1): 1}


def test_size_limit_closes_object(tmp_path: Path) -> None:
    start = datetime(2024, 1, 15, 12, tzinfo=UTC)
    pairs = arrival_pairs(*[(start + timedelta(seconds=i), str(i)) for i in range(7)])

    summary = write_log_stream(pairs, tmp_path, records_per_file=3, seed=1)

    assert [file.lines for file in summary.files] == [3, 3, 1]


def test_same_seed_same_bytes(traffic: Traffic, tmp_path: Path) -> None:
    first = write_log_stream(traffic.log_records, tmp_path / "a", seed=3,
                             duplicate_ids=traffic.duplicates)
    second = write_log_stream(traffic.log_records, tmp_path / "b", seed=3,
                              duplicate_ids=traffic.duplicates)

    assert [f.path.relative_to(tmp_path / "a") for f in first.files] == \
        [f.path.relative_to(tmp_path / "b") for f in second.files]
    for left, right in zip(first.files, second.files, strict=True):
        assert left.path.read_bytes() == right.path.read_bytes()


def test_duplicate_rate_on_streamed_records(tmp_path: Path) -> None:
    summary = write_log_stream(iter_log_records(4000, 2), tmp_path, duplicate_rate=0.05, seed=2)

    assert summary.records == 4000
    assert 120 <= summary.redeliveries <= 280


def test_unsorted_input_rejected(tmp_path: Path) -> None:
    start = datetime(2024, 1, 15, 12, tzinfo=UTC)
    pairs = arrival_pairs((start, "1"), (start - timedelta(seconds=1), "2"))

    with pytest.raises(ValueError, match="sort the records by arrival"):
        write_log_stream(pairs, tmp_path)


def test_naive_arrival_rejected(tmp_path: Path) -> None:
    pairs = [(datetime(2024, 1, 15, 12), {"log_id": "1", "date": "2024-01-15T12:00:00.000Z"})]

    with pytest.raises(ValueError, match="no time zone"):
        write_log_stream(pairs, tmp_path)


def test_duckdb_reads_the_layout(written: WriteSummary) -> None:
    """DuckDB reads the objects with hive partitions, one row per line."""
    rows = duckdb.sql(
        f"""
        SELECT dt, count(*) AS lines, count(DISTINCT detail.log_id) AS records
        FROM read_json('{written.root}/*/*.gz', hive_partitioning = true,
                       format = 'newline_delimited')
        GROUP BY dt ORDER BY dt
        """
    ).fetchall()

    assert {date.fromisoformat(str(dt)): lines for dt, lines, _ in rows} == \
        written.lines_per_partition
    assert sum(records for _, _, records in rows) >= written.records
