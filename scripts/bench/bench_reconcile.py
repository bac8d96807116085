"""Reconciliation scan speed: the DuckDB engine and a full reconciliation against DuckDB's bare scan.

Generates N Auth0 log records spread over one UTC day (app.demo.traffic),
writes them as Firehose would (gzip NDJSON under dt=YYYY-MM-DD/), and then
times, on the same files in the same run:

1. DuckDB's bare scan: `SELECT count(*) FROM read_ndjson_objects(...)`;
2. the DuckDB query engine over the day (the Auth0 mapping's SQL through the
   table-shaped view), iterating every record batch;
3. a full reconciliation of the day into a throw-away PostgreSQL database
   (query, matching against an empty ledger, inserts), unless --skip-full.

Rates are log lines per second of wall time, so every step is measured
against the same line count.

    .venv/bin/python scripts/bench/bench_reconcile.py --records 1000000 --logs /tmp/hookledger-logs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

import benchlib
from app.db.engine import Database, create_engine
from app.demo.firehose import write_log_stream
from app.demo.traffic import iter_log_records
from app.reconciliation.config import ReconciliationConfig, parse_source_reconciliation
from app.reconciliation.engines.base import LogQuery
from app.reconciliation.engines.duckdb import DuckDBEngine
from app.reconciliation.mappings import builtin_mappings
from app.reconciliation.service import Reconciler
from app.settings import Settings

DAY = datetime(2024, 1, 15, tzinfo=UTC)


def generate(root: Path, records: int, seed: int) -> dict[str, float]:
    """Write the log files unless `root` already holds this many records from an earlier run."""
    marker = root / "records.json"
    if marker.exists() and json.loads(marker.read_text()) == {"records": records, "seed": seed}:
        return {"generate_seconds": 0.0, "reused": 1}
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("dt=*/*.gz"):
        old.unlink()
    started = time.perf_counter()
    summary = write_log_stream(iter_log_records(records, seed, start=DAY), root)
    elapsed = time.perf_counter() - started
    marker.write_text(json.dumps({"records": records, "seed": seed}))
    return {"generate_seconds": round(elapsed, 1), "lines_written": summary.lines, "reused": 0}


def bare_scan(root: Path) -> tuple[int, float]:
    connection = duckdb.connect(":memory:")
    try:
        started = time.perf_counter()
        (count,) = connection.execute(
            "SELECT count(*) FROM read_ndjson_objects(?)", [str(root / "dt=*" / "*.gz")]
        ).fetchone()
        return int(count), time.perf_counter() - started
    finally:
        connection.close()


def reconciliation_config(root: Path) -> ReconciliationConfig:
    mappings = builtin_mappings()
    raw = {"mapping": "auth0", "local_root": str(root), "window": "1d"}
    return ReconciliationConfig(
        sources={"auth0": parse_source_reconciliation("auth0", raw, mappings, None)}, mappings=mappings
    )


def engine_scan(config: ReconciliationConfig) -> tuple[int, float]:
    settings = config.sources["auth0"]
    query = LogQuery(
        mapping=settings.mapping,
        start=DAY,
        end=DAY + timedelta(days=1),
        lag_margin=settings.lag_margin,
        request_token="bench-reconcile-" + "0" * 24,
    )
    started = time.perf_counter()
    rows = sum(len(batch) for batch in DuckDBEngine().query_logs(query).batches())
    return rows, time.perf_counter() - started


async def full_reconciliation(config: ReconciliationConfig, database_url: str) -> tuple[dict, float]:
    database = Database(create_engine(Settings(database_url=database_url)))
    reconciler = Reconciler(
        database, config, engine_factory=lambda settings: DuckDBEngine(), clock=lambda: DAY + timedelta(days=3)
    )
    try:
        started = time.perf_counter()
        claim = await reconciler.reconcile("auth0", DAY, DAY + timedelta(days=1))
        elapsed = time.perf_counter() - started
        run = claim.run
        return {
            "status": run.status,
            "rows_scanned": run.rows_scanned,
            "gaps_filled": run.gaps_filled,
            "error": run.error,
        }, elapsed
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="Log records to generate.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/hookledger-bench-logs"),
                        help="Folder for the generated files; reused when it holds the same records.")
    parser.add_argument("--skip-full", action="store_true", help="Skip the full reconciliation.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    result: dict = {"machine": benchlib.machine_description(), "records": args.records}
    result |= generate(args.logs, args.records, args.seed)
    config = reconciliation_config(args.logs)

    lines, bare_seconds = bare_scan(args.logs)
    result["lines"] = lines
    result["bare_scan_seconds"] = round(bare_seconds, 2)
    result["bare_scan_lines_per_second"] = round(lines / bare_seconds)

    rows, engine_seconds = engine_scan(config)
    result["engine_rows"] = rows
    result["engine_seconds"] = round(engine_seconds, 2)
    result["engine_lines_per_second"] = round(lines / engine_seconds)
    result["engine_to_bare_ratio"] = round(bare_seconds / engine_seconds, 3)

    if not args.skip_full:
        with benchlib.postgres_database() as database:
            run, full_seconds = asyncio.run(full_reconciliation(config, database.sqlalchemy_url))
        result["full_run"] = run
        result["full_seconds"] = round(full_seconds, 2)
        result["full_lines_per_second"] = round(lines / full_seconds)
        result["full_to_bare_ratio"] = round(bare_seconds / full_seconds, 3)

    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
