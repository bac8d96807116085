"""The DuckDB engine over gzip NDJSON partitions on local disk."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from app.reconciliation.engines.base import LogQuery, LogRecord
from app.reconciliation.engines.duckdb import DuckDBEngine, DuckDBSettings, partition_globs
from app.reconciliation.engines.errors import QueryFailedError, QueryTimeoutError
from app.reconciliation.engines.factory import build_engine
from app.reconciliation.mappings import LogMapping, builtin_mappings
from tests.reconciliation.engines.log_fixtures import (
    TOKEN,
    LogTree,
    expected_auth0_rows,
    record_rows,
    window_query,
)


def run(query: LogQuery, engine: DuckDBEngine | None = None) -> tuple[list[LogRecord], object]:
    result = (engine or DuckDBEngine()).query_logs(query)
    records = [record for batch in result.batches() for record in batch]
    return records, result.stats


class TestAuth0Window:
    def test_result_equals_truth(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        """The engine returns exactly the rows derived from what the fixture wrote."""
        query = window_query(auth0_mapping)
        records, stats = run(query)

        assert record_rows(records) == expected_auth0_rows(auth0_window_tree, query)
        assert stats.rows == len(records)
        assert stats.engine == "duckdb"

    def test_duplicates_collapse(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        records, _ = run(window_query(auth0_mapping))

        counts = Counter(record.log_id for record in records)
        assert counts["900001"] == 1
        assert max(counts.values()) == 1
        written = Counter(record.log_id for record in auth0_window_tree.written)
        assert written["900001"] == 4

    def test_event_time_window(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        """Start is inclusive, end exclusive, and offsets are converted to UTC first."""
        log_ids = {record.log_id for record in run(window_query(auth0_mapping))[0]}

        assert "900009" in log_ids  # exactly at start
        assert "900012" not in log_ids  # exactly at end
        assert "900013" not in log_ids  # after the window, same partition
        assert "900010" not in log_ids  # 01:30+02:00 is 23:30 the day before

    def test_late_partition_scanned(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        records, _ = run(window_query(auth0_mapping, lag_hours=6))
        late = [record for record in records if record.log_id == "900011"]

        assert len(late) == 1
        assert late[0].subject == "auth0|erin"

    def test_lag_margin_bounds_partitions(
        self, auth0_window_tree: LogTree, auth0_mapping: LogMapping
    ):
        """A record arriving after end + lag_margin is not returned; a wider margin finds it."""
        narrow = {record.log_id for record in run(window_query(auth0_mapping, lag_hours=6))[0]}
        # 47 hours reaches dt=2024-01-17 but not dt=2024-01-18, which is corrupt.
        wide_query = window_query(auth0_mapping, lag_hours=47)
        wide = {record.log_id for record in run(wide_query)[0]}

        assert "900014" not in narrow
        assert "900014" in wide

    def test_corrupt_partitions_outside_range_unread(
        self, auth0_window_tree: LogTree, auth0_mapping: LogMapping
    ):
        """dt=2024-01-13 and dt=2024-01-18 hold corrupt files; the query never opens them."""
        query = window_query(auth0_mapping)

        records, _ = run(query)
        globs = partition_globs(query)

        assert records
        assert [glob.split("/")[-2] for glob in globs] == ["dt=2024-01-14", "dt=2024-01-15", "dt=2024-01-16"]

    def test_corrupt_partition_inside_range_fails(
        self, auth0_window_tree: LogTree, auth0_mapping: LogMapping
    ):
        """The same corrupt file inside the range raises QueryFailedError, from duckdb."""
        auth0_window_tree.write_corrupt("2024-01-16")

        with pytest.raises(QueryFailedError) as raised:
            run(window_query(auth0_mapping))

        assert isinstance(raised.value.__cause__, duckdb.IOException)

    def test_ordering(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        """Records are ordered by subject with NULL first, then occurred_at, then log_id."""
        records, _ = run(window_query(auth0_mapping))
        subjects = [record.subject for record in records]

        assert subjects[0] is None
        assert None not in subjects[1:]
        keys = [(record.subject or "", record.occurred_at, record.log_id) for record in records]
        assert keys == sorted(keys)

    def test_types(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        records, _ = run(window_query(auth0_mapping))
        login = next(record for record in records if record.log_id == "900001")

        assert login.occurred_at == datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)
        assert login.occurred_at.utcoffset() == timedelta(0)
        assert all(record.occurred_at.tzinfo is not None for record in records)
        assert login.event_type == "login"
        assert login.transaction_id == "tx-1"
        assert login.session_id == "sess-1"
        assert login.client_id == "client-web"
        assert login.idempotency_key is None
        assert login.payload["type"] == "s"
        assert login.payload["details"]["transaction_id"] == "tx-1"

    def test_event_type_mapping(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        records, _ = run(window_query(auth0_mapping))
        by_id = {record.log_id: record.event_type for record in records}

        assert by_id["900002"] == "silent_login"
        assert by_id["900003"] == "refresh"
        assert by_id["900004"] == "password_grant"
        assert by_id["900005"] == "signup"
        assert "900006" not in by_id  # f
        assert "900007" not in by_id  # slo

    def test_batches_are_bounded(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        engine = DuckDBEngine(DuckDBSettings(batch_size=3))
        result = engine.query_logs(window_query(auth0_mapping))

        sizes = [len(batch) for batch in result.batches()]

        assert sizes
        assert max(sizes) <= 3
        assert sum(sizes) == result.stats.rows


class TestMissingData:
    def test_missing_root_fails(self, tmp_path):
        mapping = builtin_mappings()["auth0"].model_copy(update={"local_root": tmp_path / "none"})

        with pytest.raises(QueryFailedError, match="does not exist; check local_root"):
            run(window_query(mapping))

    def test_existing_root_without_partitions_is_empty(self, tmp_path):
        mapping = builtin_mappings()["auth0"].model_copy(update={"local_root": tmp_path})
        records, stats = run(window_query(mapping))

        assert records == []
        assert stats.rows == 0

    def test_empty_partition_dirs(self, log_tree: LogTree, auth0_mapping: LogMapping):
        (log_tree.root / "dt=2024-01-15").mkdir(parents=True)
        (log_tree.root / "dt=2024-01-16").mkdir(parents=True)

        records, _ = run(window_query(auth0_mapping))

        assert records == []

    def test_no_local_root_fails(self):
        mapping = builtin_mappings()["auth0"]

        with pytest.raises(QueryFailedError, match="local_root"):
            DuckDBEngine().query_logs(window_query(mapping))


class TestStripeMapping:
    def test_key_parity_records(self, log_tree: LogTree):
        created = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
        paid = log_tree.stripe_envelope("evt_1", "invoice.paid", created, "cus_1")
        log_tree.write(
            "2024-01-15",
            [
                paid,
                paid,
                log_tree.stripe_envelope("evt_2", "invoice.paid", created, None),
                log_tree.stripe_envelope(
                    "evt_3", "invoice.created", datetime(2024, 1, 14, 23, 0, tzinfo=UTC), "cus_1"
                ),
            ],
        )
        log_tree.write("2024-01-16", [paid])
        mapping = builtin_mappings()["stripe_eventbridge"].model_copy(
            update={"local_root": log_tree.root}
        )

        records, _ = run(window_query(mapping))

        assert [record.log_id for record in records] == ["evt_2", "evt_1"]
        first, second = records
        assert first.subject is None
        assert second.subject == "cus_1"
        assert second.idempotency_key == "evt_1"
        assert second.event_type == "invoice.paid"
        assert second.occurred_at == created
        assert second.payload["data"]["object"]["id"] == "in_FAKE000000000000000001"

    def test_subject_variable(self, log_tree: LogTree):
        """The subject path comes from the mapping's variables."""
        created = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
        log_tree.write(
            "2024-01-15", [log_tree.stripe_envelope("evt_1", "invoice.paid", created, "cus_1")]
        )
        mapping = builtin_mappings()["stripe_eventbridge"].model_copy(
            update={"local_root": log_tree.root}
        )
        by_invoice = LogMapping(
            **{**mapping.model_dump(), "variables": {"subject": "detail.data.object.id"}}
        )

        records, _ = run(window_query(by_invoice))

        assert [record.subject for record in records] == ["in_FAKE000000000000000001"]


SLOW_SQL = """
SELECT
  detail.log_id AS log_id,
  'login' AS event_type,
  detail.data.user_id AS subject,
  from_iso8601_timestamp(detail.data."date") AS occurred_at,
  CAST(NULL AS varchar) AS idempotency_key,
  CAST(NULL AS varchar) AS transaction_id,
  CAST(NULL AS varchar) AS session_id,
  CAST(NULL AS varchar) AS client_id,
  '{}' AS payload
FROM {{table}}
CROSS JOIN UNNEST(sequence(1, 10000000)) AS a(i)
CROSS JOIN UNNEST(sequence(1, 10000000)) AS b(j)
WHERE dt BETWEEN ? AND ?
  AND from_iso8601_timestamp(detail.data."date") >= from_iso8601_timestamp(?)
  AND from_iso8601_timestamp(detail.data."date") < from_iso8601_timestamp(?)
  AND i + j < 0
"""


class TestDeadline:
    def test_interrupt_raises_timeout(self, log_tree: LogTree, auth0_mapping: LogMapping):
        """A query still running at the deadline is interrupted and raises QueryTimeoutError."""
        log_tree.write(
            "2024-01-15",
            [log_tree.auth0_envelope("900001", "s", "2024-01-15T10:00:00.000Z")],
        )
        slow = LogMapping(**{**auth0_mapping.model_dump(), "name": "slow", "sql": SLOW_SQL})
        engine = DuckDBEngine(DuckDBSettings(deadline_seconds=0.2))

        started = time.monotonic()
        with pytest.raises(QueryTimeoutError):
            run(window_query(slow), engine)

        # Generous budget: the cross join of two 10^7 sequences runs far longer than this.
        assert time.monotonic() - started < 20


def test_factory_builds_duckdb(auth0_mapping: LogMapping):
    engine = build_engine(auth0_mapping)

    assert isinstance(engine, DuckDBEngine)


def test_factory_requires_local_root():
    with pytest.raises(ValueError, match="local_root"):
        build_engine(builtin_mappings()["auth0"])


def test_query_rejects_naive_window(auth0_mapping: LogMapping):
    with pytest.raises(ValueError, match="timezone-aware"):
        LogQuery(
            mapping=auth0_mapping,
            start=datetime(2024, 1, 15),
            end=datetime(2024, 1, 16, tzinfo=UTC),
            lag_margin=timedelta(0),
            request_token=TOKEN,
        )


def test_connection_settings_applied():
    engine = DuckDBEngine(DuckDBSettings(threads=1, memory_limit="256MB"))

    connection = engine.connect()
    settings = dict(
        connection.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('threads', 'TimeZone', 'memory_limit')"
        ).fetchall()
    )
    connection.close()

    assert settings["threads"] == "1"
    assert settings["TimeZone"] == "UTC"
    assert settings["memory_limit"].startswith("244")
