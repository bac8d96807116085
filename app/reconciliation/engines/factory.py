"""Build the query engine that a log mapping names."""

from __future__ import annotations

from typing import Any

from app.reconciliation.engines.athena import (
    AthenaEngine,
    AthenaSettings,
    make_athena_client,
    make_s3_client,
)
from app.reconciliation.engines.base import QueryEngine
from app.reconciliation.engines.duckdb import DuckDBEngine, DuckDBSettings
from app.reconciliation.mappings import LogMapping


def build_engine(
    mapping: LogMapping,
    settings: AthenaSettings | DuckDBSettings | None = None,
    *,
    athena_client: Any | None = None,
    s3_client: Any | None = None,
) -> QueryEngine:
    """Return a DuckDB or Athena engine for `mapping.engine`.

    `settings` are the chosen engine's settings; by default they are read from
    the environment. For Athena, clients are built from the settings unless given.
    """
    if mapping.engine == "duckdb":
        if mapping.local_root is None:
            msg = f"Log mapping {mapping.name!r} uses the duckdb engine but sets no local_root."
            raise ValueError(msg)
        duckdb_settings = settings if isinstance(settings, DuckDBSettings) else DuckDBSettings()
        return DuckDBEngine(duckdb_settings)
    athena_settings = settings if isinstance(settings, AthenaSettings) else AthenaSettings()
    client = athena_client or make_athena_client(athena_settings)
    if s3_client is None and athena_settings.use_result_file_above_rows is not None:
        s3_client = make_s3_client(athena_settings)
    return AthenaEngine(client, athena_settings, s3_client=s3_client)
