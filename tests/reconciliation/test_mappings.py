"""Log mappings: built-ins, the `[log_mappings.NAME]` configuration, and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.reconciliation.mappings import (
    AUTH0_EVENTBRIDGE_COLUMNS,
    LogMapping,
    builtin_mappings,
    parse_log_mappings,
)

MINIMAL_SQL = """
SELECT
  detail.id AS log_id, detail.type AS event_type, detail.customer AS subject,
  from_unixtime(detail.created) AS occurred_at, detail.id AS idempotency_key,
  CAST(NULL AS varchar) AS transaction_id, CAST(NULL AS varchar) AS session_id,
  CAST(NULL AS varchar) AS client_id, json_format(CAST(detail AS JSON)) AS payload
FROM {{table}}
WHERE dt BETWEEN ? AND ?
  AND from_unixtime(detail.created) >= from_iso8601_timestamp(?)
  AND from_unixtime(detail.created) < from_iso8601_timestamp(?)
"""
GITHUB_COLUMNS = {"detail": "struct<id:string,type:string,customer:string,created:bigint>"}


def github_entry(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "sql": MINIMAL_SQL,
        "table": "logs.github_deliveries",
        "strategy": "key",
        "columns": GITHUB_COLUMNS,
    }
    entry.update(overrides)
    return entry


class TestBuiltins:
    def test_auth0(self):
        auth0 = builtin_mappings()["auth0"]

        assert auth0.strategy == "match"
        assert auth0.engine == "duckdb"
        assert auth0.table == "hookledger.auth0_logs"
        assert auth0.columns == AUTH0_EVENTBRIDGE_COLUMNS
        for log_type, event_type in [
            ("s", "login"),
            ("ssa", "silent_login"),
            ("sertft", "refresh"),
            ("sepft", "password_grant"),
            ("ss", "signup"),
        ]:
            assert f"WHEN '{log_type}' THEN '{event_type}'" in auth0.sql

    def test_stripe(self):
        stripe = builtin_mappings()["stripe_eventbridge"]

        assert stripe.strategy == "key"
        assert stripe.variables == {"subject": "detail.data.object.customer"}
        assert "detail.data.object.customer AS subject" in stripe.render_sql('"d"."t"')

    def test_athena_table_reference(self):
        rendered = builtin_mappings()["auth0"].render_sql(
            builtin_mappings()["auth0"].athena_table_reference()
        )

        assert 'FROM "hookledger"."auth0_logs"' in rendered
        assert "{{" not in rendered


class TestParse:
    def test_empty_section_keeps_builtins(self):
        mappings = parse_log_mappings({})

        assert set(mappings) == {"auth0", "stripe_eventbridge"}

    def test_new_mapping(self):
        mappings = parse_log_mappings({"github": github_entry()})

        github = mappings["github"]
        assert github.name == "github"
        assert github.strategy == "key"
        assert github.table == "logs.github_deliveries"
        assert "auth0" in mappings

    def test_sql_file_relative_to_base_dir(self, tmp_path: Path):
        (tmp_path / "sql").mkdir()
        (tmp_path / "sql" / "github.sql").write_text(MINIMAL_SQL)
        entry = github_entry(sql_file="sql/github.sql", local_root="logs/github")
        del entry["sql"]

        github = parse_log_mappings({"github": entry}, base_dir=tmp_path)["github"]

        assert github.sql == MINIMAL_SQL
        assert github.local_root == tmp_path / "logs" / "github"

    def test_override_builtin_fields(self, tmp_path: Path):
        """A section named like a built-in changes only the keys it sets."""
        mappings = parse_log_mappings(
            {"auth0": {"engine": "athena", "table": "prod.auth0_logs"}}, base_dir=tmp_path
        )

        auth0 = mappings["auth0"]
        assert auth0.engine == "athena"
        assert auth0.table == "prod.auth0_logs"
        assert auth0.sql == builtin_mappings()["auth0"].sql
        assert auth0.strategy == "match"

    def test_base_mapping_with_variables(self):
        mappings = parse_log_mappings(
            {
                "stripe": {
                    "base": "stripe_eventbridge",
                    "table": "prod.stripe_events",
                    "variables": {"subject": "detail.data.object.id"},
                }
            }
        )

        stripe = mappings["stripe"]
        assert stripe.name == "stripe"
        assert stripe.strategy == "key"
        assert "detail.data.object.id AS subject" in stripe.render_sql('"d"."t"')
        assert mappings["stripe_eventbridge"].variables["subject"] == "detail.data.object.customer"


class TestInvalid:
    @pytest.mark.parametrize(
        ("entry", "fragment"),
        [
            (github_entry(strategy="guess"), "log_mappings.github.strategy"),
            (github_entry(table="no_database"), "log_mappings.github.table"),
            (github_entry(engine="spark"), "log_mappings.github.engine"),
            (github_entry(columns={"detail": "struct<id:strin"}), "log_mappings.github.columns"),
            (github_entry(columns={"detail": "timestamp"}), "declare it as string"),
            (github_entry(columns={"dt": "string"}), "partition column"),
            (github_entry(variables={"subject": "x; DROP TABLE t"}), "log_mappings.github.variables"),
            (github_entry(sql="SELECT 1 AS log_id FROM {{table}}"), "must return the columns"),
            (
                github_entry(sql=MINIMAL_SQL.replace("BETWEEN ? AND ?", "BETWEEN '1' AND '2'")),
                "exactly 4 '?' parameters",
            ),
            (
                github_entry(sql=MINIMAL_SQL.replace("{{table}}", "{{tabel}}")),
                "{{tabel}}",
            ),
            (github_entry(sql="SELECT FROM WHERE"), "log_mappings.github.sql"),
        ],
    )
    def test_field_errors_name_mapping_and_field(self, entry, fragment):
        with pytest.raises(ValueError) as raised:
            parse_log_mappings({"github": entry})

        assert fragment in str(raised.value)
        assert "log_mappings.github" in str(raised.value)

    def test_unknown_key(self):
        with pytest.raises(ValueError, match=r"log_mappings\.github has unknown keys \['tabel'\]"):
            parse_log_mappings({"github": github_entry(tabel="x.y")})

    def test_sql_and_sql_file(self):
        with pytest.raises(ValueError, match="sets both sql and sql_file"):
            parse_log_mappings({"github": github_entry(sql_file="x.sql")})

    def test_missing_sql_file(self, tmp_path: Path):
        entry = github_entry(sql_file="missing.sql")
        del entry["sql"]

        with pytest.raises(ValueError, match=r"log_mappings\.github\.sql_file could not be read"):
            parse_log_mappings({"github": entry}, base_dir=tmp_path)

    def test_missing_required_keys(self):
        with pytest.raises(ValueError, match=r"log_mappings\.github is missing sql, table"):
            parse_log_mappings({"github": {"strategy": "key"}})

    def test_unknown_base(self):
        with pytest.raises(ValueError, match=r"log_mappings\.x\.base names 'nope'"):
            parse_log_mappings({"x": {"base": "nope"}})

    def test_not_a_table(self):
        with pytest.raises(ValueError, match=r"log_mappings\.github must be a table"):
            parse_log_mappings({"github": "SELECT 1"})

    def test_model_is_frozen(self):
        mapping = builtin_mappings()["auth0"]

        with pytest.raises(ValueError):
            mapping.table = "other.table"  # type: ignore[misc]

    def test_invalid_name(self):
        with pytest.raises(ValueError, match="lower-case"):
            LogMapping(**{**builtin_mappings()["auth0"].model_dump(), "name": "Bad Name"})
