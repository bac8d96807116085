"""Fast conversion of DuckDB rows, lazy payloads and the json_transform view."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from app.reconciliation.engines.base import LogRecord, record_from_row
from app.reconciliation.engines.duckdb import DuckDBEngine, create_view_sql, duckdb_sql, partition_globs
from app.reconciliation.engines.duckdb_results import records_from_rows, result_query
from app.reconciliation.engines.errors import QueryFailedError
from app.reconciliation.engines.table_shape import view_select_sql
from app.reconciliation.mappings import LogMapping
from tests.reconciliation.engines.log_fixtures import LogTree, window_query

WHEN = datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)


def row_by_row(mapping: LogMapping, query) -> list[LogRecord]:
    """Convert the mapping's result the way the engine did before: every row through record_from_row."""
    connection = DuckDBEngine().connect()
    try:
        connection.execute(create_view_sql(mapping, partition_globs(query)))
        cursor = connection.execute(duckdb_sql(mapping), query.parameters())
        names = [column[0] for column in cursor.description]
        return [record_from_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
    finally:
        connection.close()


class TestFastConversion:
    def test_same_records_as_row_by_row(self, auth0_window_tree: LogTree, auth0_mapping: LogMapping):
        """On the fixture tree (NULL subject, +02:00 offsets, duplicates) both paths give equal records."""
        query = window_query(auth0_mapping)

        fast = [record for batch in DuckDBEngine().query_logs(query).batches() for record in batch]
        slow = row_by_row(auth0_mapping, query)

        assert fast == slow
        assert [record.payload for record in fast] == [record.payload for record in slow]
        assert any(record.subject is None for record in fast)
        assert all(record.occurred_at.utcoffset() == timedelta(0) for record in fast)

    def test_timestamp_rendering_exact(self):
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        sql = (
            "SELECT 'l1' AS log_id, 'login' AS event_type, NULL AS subject, "
            "CAST('2024-01-15T12:30:06.123456+02:00' AS TIMESTAMPTZ) AS occurred_at, '' AS idempotency_key, "
            "NULL AS transaction_id, '' AS session_id, 'c' AS client_id, '{\"a\": [1, null]}' AS payload"
        )
        types = {row[0]: row[1] for row in connection.execute(f"DESCRIBE {sql}").fetchall()}
        fetched = result_query(sql, types)
        cursor = connection.execute(fetched.sql)
        names = [column[0] for column in cursor.description]

        (record,) = records_from_rows(cursor.fetchall(), names, fast=fetched.fast)

        assert fetched.fast
        assert record.occurred_at == datetime(2024, 1, 15, 10, 30, 6, 123456, tzinfo=UTC)
        assert record.subject is None
        assert record.idempotency_key is None
        assert record.session_id is None
        assert record.client_id == "c"
        assert record.payload == {"a": [1, None]}

    def test_text_timestamp_takes_row_path(self):
        """A mapping that selects occurred_at as text is converted by record_from_row."""
        types = {"occurred_at": "VARCHAR", "payload": "VARCHAR"}
        fetched = result_query("SELECT 1", types)

        assert not fetched.fast
        assert fetched.sql == "SELECT 1"

    @pytest.mark.parametrize(
        ("payload", "kind", "message"),
        [("not json", None, "not valid JSON"), ("[1, 2]", "ARRAY", "JSON list")],
    )
    def test_bad_payload_raises_at_fetch(self, payload: str, kind: str | None, message: str):
        row = ("l1", "login", "u", "2024-01-15T10:30:06.123000+00:00", None, None, None, None, payload, kind)

        with pytest.raises(QueryFailedError, match=message):
            records_from_rows([row], [], fast=True)

    @pytest.mark.parametrize("payload", [None, ""])
    def test_empty_payload_is_empty_object(self, payload: str | None):
        row = ("l1", "login", "u", "2024-01-15T10:30:06.123000+00:00", None, None, None, None, payload, None)

        (record,) = records_from_rows([row], [], fast=True)

        assert record.payload == {}

    def test_missing_occurred_at_raises(self):
        row = ("l1", "login", "u", None, None, None, None, None, "{}", "OBJECT")

        with pytest.raises(QueryFailedError, match="without log_id, event_type or occurred_at"):
            records_from_rows([row], [], fast=True)


class TestLazyPayload:
    def test_json_text_equals_dict(self):
        text = LogRecord("1", "login", "u", WHEN, None, "t", "s", "c", payload_json='{"b": 1, "a": {"x": null}}')
        parsed = LogRecord("1", "login", "u", WHEN, None, "t", "s", "c", {"b": 1, "a": {"x": None}})

        assert text == parsed
        assert text.payload == {"b": 1, "a": {"x": None}}

    def test_parsed_once(self):
        record = LogRecord("1", "login", "u", WHEN, None, None, None, None, payload_json='{"a": 1}')

        assert record.payload is record.payload

    def test_invalid_json_raises_on_read(self):
        record = LogRecord("1", "login", "u", WHEN, None, None, None, None, payload_json="{")

        with pytest.raises(QueryFailedError, match="not valid JSON"):
            _ = record.payload

    def test_exactly_one_payload_form(self):
        with pytest.raises(TypeError):
            LogRecord("1", "login", "u", WHEN, None, None, None, None)
        with pytest.raises(TypeError):
            LogRecord("1", "login", "u", WHEN, None, None, None, None, {}, payload_json="{}")

    def test_immutable(self):
        record = LogRecord("1", "login", "u", WHEN, None, None, None, None, {})

        with pytest.raises(AttributeError):
            record.log_id = "2"  # type: ignore[misc]

    def test_different_payload_not_equal(self):
        first = LogRecord("1", "login", "u", WHEN, None, None, None, None, payload_json='{"a": 1}')
        second = LogRecord("1", "login", "u", WHEN, None, None, None, None, payload_json='{"a": 2}')

        assert first != second


class TestViewShape:
    def shaped_rows(self, tmp_path: Path, columns: dict[str, str], lines: list[str]) -> list[tuple]:
        path = tmp_path / "lines.gz"
        with gzip.open(path, "wt") as file:
            file.write("\n".join(lines) + "\n")
        source = f"(SELECT json, 'x' AS dt FROM read_ndjson_objects('{path}', compression = 'gzip'))"
        connection = duckdb.connect()
        try:
            return connection.execute(view_select_sql(columns, source)).fetchall()
        finally:
            connection.close()

    def test_struct_that_is_not_an_object_is_null(self, tmp_path: Path):
        columns = {"s": "string", "st": "struct<a:string,inner:struct<x:string>>"}
        lines = [
            json.dumps({"s": "ok", "st": {"a": "A", "inner": {"x": "X"}}}),
            json.dumps({"s": {"o": 1}, "st": "text"}),
            json.dumps({"st": {"inner": 5}}),
            json.dumps({"st": {}}),
            json.dumps({"st": None}),
        ]

        rows = self.shaped_rows(tmp_path, columns, lines)

        assert rows[0] == ("ok", {"a": "A", "inner": {"x": "X"}}, "x")
        assert rows[1] == ('{"o":1}', None, "x")
        assert rows[2] == (None, {"a": None, "inner": None}, "x")
        assert rows[3] == (None, {"a": None, "inner": None}, "x")
        assert rows[4] == (None, None, "x")

    def test_scalars_arrays_and_maps(self, tmp_path: Path):
        columns = {"n": "bigint", "flag": "boolean", "tags": "array<string>", "labels": "map<string,string>"}
        lines = [
            json.dumps({"n": "12", "flag": True, "tags": ["a", 1], "labels": {"k": "v"}}),
            json.dumps({"n": "twelve", "flag": "nope", "tags": "a", "labels": [1]}),
        ]

        rows = self.shaped_rows(tmp_path, columns, lines)

        assert rows[0] == (12, True, ["a", "1"], {"k": "v"}, "x")
        assert rows[1] == (None, None, None, None, "x")
