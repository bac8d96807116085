"""Log mappings: which log table a source reconciles from, and the SQL that maps it.

A mapping's SQL is one SELECT in Athena's (Trino) dialect. It reads the table named
by the `{{table}}` placeholder and returns the columns of `LogRecord`
(log_id, event_type, subject, occurred_at, idempotency_key, transaction_id,
session_id, client_id, payload). It takes four positional `?` parameters, all in
WHERE clauses, in this order: dt_from, dt_to, start, end (see
`app.reconciliation.engines.base`). Other `{{name}}` placeholders are filled from
the mapping's `variables`, whose values must be column paths such as
``detail.data.object.customer``.

Built-in mappings:

- `auth0`: Auth0 log records through the EventBridge log stream, matched to pushes.
- `stripe_eventbridge`: Stripe events through EventBridge, keyed by the event id.

The TOML section ``[log_mappings.NAME]`` adds mappings or overrides fields of a
built-in one; see `parse_log_mappings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlglot import exp
from sqlglot.errors import SqlglotError

from app.reconciliation.engines.base import RESULT_COLUMNS
from app.reconciliation.engines.table_shape import parse_hive_type

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PARAMETER_COUNT = 4
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_COLUMN_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# Columns of the EventBridge envelope table, as declared in scripts/athena/auth0_logs.sql.
# `detail-type` is left out: Hive column names cannot contain "-".
AUTH0_EVENTBRIDGE_COLUMNS: dict[str, str] = {
    "version": "string",
    "id": "string",
    "source": "string",
    "account": "string",
    "time": "string",
    "region": "string",
    "detail": (
        "struct<log_id:string,data:struct<"
        "`date`:string,type:string,description:string,connection:string,"
        "connection_id:string,client_id:string,client_name:string,ip:string,"
        "user_agent:string,hostname:string,user_id:string,user_name:string,"
        "strategy:string,strategy_type:string,audience:string,organization_id:string,"
        "organization_name:string,tenant_name:string,environment_name:string,log_id:string,"
        "details:struct<session_id:string,transaction_id:string>>>"
    ),
}

STRIPE_EVENTBRIDGE_COLUMNS: dict[str, str] = {
    "version": "string",
    "id": "string",
    "source": "string",
    "account": "string",
    "time": "string",
    "region": "string",
    "detail": (
        "struct<id:string,object:string,type:string,created:bigint,livemode:boolean,"
        "api_version:string,data:struct<object:struct<id:string,object:string,customer:string>>>"
    ),
}

_CONFIG_KEYS = frozenset(
    {
        "base",
        "sql",
        "sql_file",
        "table",
        "strategy",
        "local_root",
        "engine",
        "columns",
        "variables",
        "description",
    }
)


class LogMapping(BaseModel):
    """One source's log table and the SQL that turns its rows into `LogRecord`s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sql: str
    # Athena `database.table`; DuckDB reads `local_root` instead.
    table: str
    # `match`: records are matched to pushes (Auth0). `key`: records carry the push's key.
    strategy: Literal["match", "key"]
    engine: Literal["duckdb", "athena"] = "duckdb"
    # A directory holding `dt=YYYY-MM-DD/*.gz` partitions, for the DuckDB engine.
    local_root: Path | None = None
    # The table's columns as Hive types, without the `dt` partition column.
    columns: dict[str, str] = Field(default_factory=dict)
    # Values for `{{name}}` placeholders in `sql`.
    variables: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            msg = f"{value!r} must be lower-case letters, digits, '_' or '-', starting with a letter"
            raise ValueError(msg)
        return value

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        if not _TABLE.match(value):
            msg = f"{value!r} must be an Athena table name of the form database.table"
            raise ValueError(msg)
        return value

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            msg = "at least one column is required to read the table"
            raise ValueError(msg)
        for name, type_text in value.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name.lower() == "dt":
                msg = f"{name!r} is not a valid column name (dt is the partition column)"
                raise ValueError(msg)
            parse_hive_type(type_text)
        return value

    @field_validator("variables")
    @classmethod
    def _check_variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if name == "table":
                msg = "'table' is reserved for the table reference"
                raise ValueError(msg)
            if not _COLUMN_PATH.match(path):
                msg = f"{name} = {path!r} must be a column path such as detail.data.object.customer"
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_sql(self) -> LogMapping:
        check_sql(self.render_sql('"database"."table"'))
        return self

    def render_sql(self, table_reference: str) -> str:
        """Return the SQL with `{{table}}` replaced by `table_reference` and variables filled."""
        values = {**self.variables, "table": table_reference}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                msg = f"the SQL uses the placeholder {{{{{name}}}}}, which has no value in variables"
                raise ValueError(msg)
            return values[name]

        return PLACEHOLDER.sub(replace, self.sql)

    def athena_table_reference(self) -> str:
        """Return the quoted `"database"."table"` reference for Athena."""
        database, table = self.table.split(".")
        return f'"{database}"."{table}"'


def check_sql(sql: str) -> None:
    """Check that `sql` is one Athena SELECT with the result columns and four parameters."""
    try:
        statements = sqlglot.parse(sql, read="athena")
    except SqlglotError as exc:
        msg = f"the SQL does not parse in Athena's dialect: {exc}"
        raise ValueError(msg) from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        msg = "the SQL must be exactly one SELECT statement"
        raise ValueError(msg)
    query = statements[0]
    selected = query.named_selects
    if sorted(selected) != sorted(RESULT_COLUMNS):
        msg = f"the SELECT must return the columns {', '.join(RESULT_COLUMNS)}; it returns {selected}"
        raise ValueError(msg)
    parameters = list(query.find_all(exp.Placeholder))
    if len(parameters) != PARAMETER_COUNT:
        msg = (
            f"the SQL must use exactly {PARAMETER_COUNT} '?' parameters "
            f"(dt_from, dt_to, start, end); it uses {len(parameters)}"
        )
        raise ValueError(msg)


def _builtin_sql(file_name: str) -> str:
    return resources.files("app.reconciliation").joinpath("sql", file_name).read_text("utf-8")


def builtin_mappings() -> dict[str, LogMapping]:
    """Return the built-in mappings by name."""
    auth0 = LogMapping(
        name="auth0",
        sql=_builtin_sql("auth0_eventbridge.sql"),
        table="hookledger.auth0_logs",
        strategy="match",
        columns=AUTH0_EVENTBRIDGE_COLUMNS,
        description="Auth0 log stream through Amazon EventBridge; s, ssa, sertft, sepft, ss.",
    )
    stripe = LogMapping(
        name="stripe_eventbridge",
        sql=_builtin_sql("stripe_eventbridge.sql"),
        table="hookledger.stripe_events",
        strategy="key",
        columns=STRIPE_EVENTBRIDGE_COLUMNS,
        variables={"subject": "detail.data.object.customer"},
        description="Stripe events through Amazon EventBridge, keyed by the evt_ id.",
    )
    return {auth0.name: auth0, stripe.name: stripe}


def parse_log_mappings(
    raw: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    builtins: Mapping[str, LogMapping] | None = None,
) -> dict[str, LogMapping]:
    """Parse the TOML `[log_mappings.NAME]` tables and merge them with the built-ins.

    Keys of each table: `sql` or `sql_file`, `table`, `strategy`, `local_root`,
    `engine`, `columns` (a table of Hive types), `variables`, `description` and
    `base`. A table named like a built-in mapping, or with `base = "<built-in>"`,
    starts from that mapping: its keys replace the built-in's, and `variables`
    are merged. Relative `sql_file` and `local_root` paths are resolved against
    `base_dir` (the directory of the configuration file).

    Raises ValueError naming the mapping and the field for every invalid entry.
    """
    known = dict(builtin_mappings() if builtins is None else builtins)
    parsed: dict[str, LogMapping] = {}
    for name, entry in raw.items():
        parsed[name] = _parse_one(name, entry, known, base_dir)
    return {**known, **parsed}


def _parse_one(
    name: str, entry: Any, known: Mapping[str, LogMapping], base_dir: Path | None
) -> LogMapping:
    where = f"log_mappings.{name}"
    if not isinstance(entry, Mapping):
        msg = f"{where} must be a table of settings, got {type(entry).__name__}."
        raise ValueError(msg)
    unknown = sorted(set(entry) - _CONFIG_KEYS)
    if unknown:
        msg = f"{where} has unknown keys {unknown}; allowed keys are {sorted(_CONFIG_KEYS)}."
        raise ValueError(msg)

    base_name = entry.get("base", name if name in known else None)
    data: dict[str, Any] = {}
    if base_name is not None:
        if base_name not in known:
            msg = f"{where}.base names {base_name!r}, which is not a built-in mapping."
            raise ValueError(msg)
        data = known[base_name].model_dump()

    fields = {key: value for key, value in entry.items() if key not in ("base", "sql_file")}
    if "sql" in entry and "sql_file" in entry:
        msg = f"{where} sets both sql and sql_file; keep one."
        raise ValueError(msg)
    if "sql_file" in entry:
        fields["sql"] = _read_sql_file(where, entry["sql_file"], base_dir)
    if "variables" in fields and isinstance(fields["variables"], Mapping):
        fields["variables"] = {**data.get("variables", {}), **fields["variables"]}
    if isinstance(fields.get("local_root"), str) and base_dir is not None:
        fields["local_root"] = base_dir / fields["local_root"]
    data.update(fields)
    data["name"] = name

    missing = [key for key in ("sql", "table", "strategy", "columns") if key not in data]
    if missing:
        msg = f"{where} is missing {', '.join(missing)} (or a base mapping that provides them)."
        raise ValueError(msg)
    try:
        return LogMapping(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(part) for part in error['loc']) or 'sql'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"Invalid log mapping: {problems}.") from exc


def _read_sql_file(where: str, value: Any, base_dir: Path | None) -> str:
    if not isinstance(value, str) or not value:
        msg = f"{where}.sql_file must be a path string."
        raise ValueError(msg)
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        msg = f"{where}.sql_file could not be read from {path}: {exc.strerror}."
        raise ValueError(msg) from exc
