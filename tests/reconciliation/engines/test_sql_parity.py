"""One SQL text for both engines: shape, transpilation and results.

The mappings' SQL is written for Athena. These tests check that (1) the DuckDB
view has the column types of the Athena table in scripts/athena/auth0_logs.sql,
(2) the transpiled SQL run on that view returns the rows derived from the fixture's records,
and (3) sqlglot still transpiles the SQL to the reviewed text.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from app.reconciliation.engines.base import record_from_row
from app.reconciliation.engines.duckdb import (
    VIEW_NAME,
    create_view_sql,
    duckdb_sql,
    partition_globs,
)
from app.reconciliation.mappings import AUTH0_EVENTBRIDGE_COLUMNS, LogMapping, builtin_mappings
from tests.reconciliation.engines.log_fixtures import LogTree, expected_auth0_rows, window_query

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOTS = ROOT / "tests" / "data" / "logs"
DDL = ROOT / "scripts" / "athena" / "auth0_logs.sql"


def ddl_columns() -> dict[str, exp.DataType]:
    create = sqlglot.parse_one(DDL.read_text(), read="athena")
    schema = create.this
    return {column.name: column.args["kind"] for column in schema.expressions}


def test_ddl_declares_mapping_columns():
    """The Athena DDL and the mapping's column declarations describe the same table."""
    declared = {
        name: exp.DataType.build(type_text, dialect="hive").sql("duckdb")
        for name, type_text in AUTH0_EVENTBRIDGE_COLUMNS.items()
    }
    in_ddl = {name: data_type.sql("duckdb") for name, data_type in ddl_columns().items()}

    assert in_ddl == declared


def test_ddl_uses_hive_serde_and_projection():
    text = DDL.read_text()

    assert "org.apache.hive.hcatalog.data.JsonSerDe" in text
    assert "PARTITIONED BY (`dt` string)" in text
    for setting in (
        "'projection.dt.type' = 'date'",
        "'projection.dt.format' = 'yyyy-MM-dd'",
        "'projection.dt.range' = '2024-01-01,NOW'",
        "'storage.location.template' = 's3://<bucket>/auth0-logs/dt=${dt}/'",
    ):
        assert setting in text


def test_view_has_athena_table_types(auth0_window_tree: LogTree, auth0_mapping: LogMapping):
    """DESCRIBE of the DuckDB view equals the DDL's columns in DuckDB types, plus dt."""
    globs = partition_globs(window_query(auth0_mapping))
    connection = duckdb.connect()
    connection.execute(create_view_sql(auth0_mapping, globs))

    described = connection.execute(f"DESCRIBE {VIEW_NAME}").fetchall()
    view_types = {name: column_type for name, column_type, *_ in described}

    expected = {name: type_shape(data_type) for name, data_type in ddl_columns().items()}
    expected["dt"] = "TEXT"
    actual = {
        name: type_shape(exp.DataType.build(kind, dialect="duckdb"))
        for name, kind in view_types.items()
    }
    assert actual == expected


def type_shape(data_type: exp.DataType) -> object:
    """Reduce a type to nested tuples of (field name, type), ignoring identifier quoting."""
    if data_type.this == exp.DType.STRUCT:
        return tuple(
            (field.name.lower(), type_shape(field.args["kind"])) for field in data_type.expressions
        )
    if data_type.this in (exp.DType.ARRAY, exp.DType.MAP):
        return (data_type.this.name, *(type_shape(child) for child in data_type.expressions))
    return "TEXT" if data_type.this == exp.DType.VARCHAR else data_type.this.name


def test_transpiled_sql_matches_truth(auth0_window_tree: LogTree, auth0_mapping: LogMapping):
    """The Athena SQL, transpiled and run on the view, returns the hand-derived rows."""
    query = window_query(auth0_mapping)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(create_view_sql(auth0_mapping, partition_globs(query)))

    cursor = connection.execute(duckdb_sql(auth0_mapping), query.parameters())
    names = [column[0] for column in cursor.description]
    records = [record_from_row(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    actual = [
        (
            record.log_id,
            record.event_type,
            record.subject,
            record.occurred_at,
            record.session_id,
            record.transaction_id,
            record.client_id,
        )
        for record in records
    ]
    assert actual == expected_auth0_rows(auth0_window_tree, query)
    assert len(actual) == 9


@pytest.mark.parametrize(
    ("mapping_name", "snapshot"),
    [
        ("auth0", "auth0_eventbridge.duckdb.sql"),
        ("stripe_eventbridge", "stripe_eventbridge.duckdb.sql"),
    ],
)
def test_transpiled_text_snapshot(mapping_name: str, snapshot: str):
    """sqlglot's output is pinned; a changed transpilation must be reviewed."""
    transpiled = duckdb_sql(builtin_mappings()[mapping_name])

    assert transpiled + "\n" == (SNAPSHOTS / snapshot).read_text()


@pytest.mark.parametrize("mapping_name", ["auth0", "stripe_eventbridge"])
def test_parameters_only_in_where(mapping_name: str):
    """Athena accepts `?` only in WHERE clauses."""
    mapping = builtin_mappings()[mapping_name]
    parsed = sqlglot.parse_one(mapping.render_sql('"db"."t"'), read="athena")
    placeholders = list(parsed.find_all(exp.Placeholder))

    assert len(placeholders) == 4
    for placeholder in placeholders:
        assert placeholder.find_ancestor(exp.Where) is not None


@pytest.mark.parametrize("mapping_name", ["auth0", "stripe_eventbridge"])
def test_no_approximate_functions(mapping_name: str):
    sql = builtin_mappings()[mapping_name].sql.lower()

    assert "approx_" not in sql
    assert "row_number() over (partition by log_id" in sql


def test_sqlglot_version_pinned():
    """The snapshots were produced by this sqlglot version."""
    assert sqlglot.__version__ == "30.31.0"
