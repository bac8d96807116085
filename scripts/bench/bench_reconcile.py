"""Reconciliation scan speed: the DuckDB engine and a full reconciliation against DuckDB's bare scan.

Generates N Auth0 log records spread over one UTC day (app.demo.traffic),
writes them as Firehose would (gzip NDJSON under dt=YYYY-MM-DD/), and then
times, on the same files in the same run:

1. DuckDB's bare scan: `SELECT count(*) FROM read_ndjson_objects(...)`;
2. the DuckDB query engine over the day (the Auth0 mapping's SQL through the
   table-shaped view), iterating every record batch;
3. a full reconciliation of the day against a throw-away PostgreSQL ledger,
   unless --skip-full. Before the timer starts, the ledger gets one pushed
   event for each login record of the day except a `--missing` share (5% by
   default, chosen by a hash of the log id), dated up to 3 s before the log
   record, with the ids the Auth0 Action pushes. The run then matches every
   record and inserts the missing ones.

Rates are log lines per second of wall time, so every step is measured
against the same line count. The load average is read before and after.

    .venv/bin/python scripts/bench/bench_reconcile.py --records 1000000 --logs /tmp/hookledger-bench-logs --reuse-logs
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
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


def generate(root: Path, records: int, seed: int, *, reuse: bool) -> dict[str, float]:
    """Write the log files; with `reuse`, keep those of an earlier run with the same records and seed."""
    marker = root / "records.json"
    if reuse and marker.exists() and json.loads(marker.read_text()) == {"records": records, "seed": seed}:
        return {"generate_seconds": 0.0, "reused": 1}
    root.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
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


LOG_EVENT_TYPES = {"s": "login", "ssa": "silent_login", "sertft": "refresh", "sepft": "password_grant", "ss": "signup"}

# One row per distinct login record of the day, with the fields a push carries.
LOGIN_RECORDS_SQL = """
SELECT DISTINCT ON (log_id) log_id, log_type, user_id, occurred_at, transaction_id, session_id, client_id
FROM (
    SELECT
        json ->> '$.detail.log_id' AS log_id,
        json ->> '$.detail.data.type' AS log_type,
        json ->> '$.detail.data.user_id' AS user_id,
        CAST(json ->> '$.detail.data.date' AS TIMESTAMPTZ) AS occurred_at,
        json ->> '$.detail.data.details.transaction_id' AS transaction_id,
        json ->> '$.detail.data.details.session_id' AS session_id,
        json ->> '$.detail.data.client_id' AS client_id
    FROM read_ndjson_objects(?)
)
WHERE log_type IN ('s', 'ssa', 'sertft', 'sepft', 'ss') AND occurred_at >= ? AND occurred_at < ?
ORDER BY log_id
"""


def push_rows(root: Path, missing: float) -> tuple[list[tuple], int]:
    """Return the ledger rows of the pushed twins, and how many login records have none."""
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        records = connection.execute(
            LOGIN_RECORDS_SQL, [str(root / "dt=*" / "*.gz"), DAY, DAY + timedelta(days=1)]
        ).fetchall()
    finally:
        connection.close()
    received_at = DAY + timedelta(days=1)
    rows = []
    for log_id, log_type, user_id, occurred_at, transaction_id, session_id, client_id in records:
        digest = hashlib.sha256(log_id.encode()).digest()
        if int.from_bytes(digest[:4], "big") / 2**32 < missing:
            continue
        kind = LOG_EVENT_TYPES[log_type]
        pushed_at = occurred_at - timedelta(milliseconds=int.from_bytes(digest[4:6], "big") % 3000)
        body = {
            "type": kind,
            "timestamp": pushed_at.isoformat(),
            "data": {
                "kind": kind,
                "user_id": user_id,
                "client_id": client_id,
                "transaction_id": transaction_id,
                "session_id": session_id,
            },
        }
        payload = json.dumps(body)
        rows.append(
            (
                "auth0",
                f"push:{log_id}",
                kind,
                user_id,
                pushed_at,
                received_at,
                "push",
                payload,
                hashlib.sha256(payload.encode()).hexdigest(),
            )
        )
    return rows, len(records) - len(rows)


async def load_pushes(dsn: str, rows: list[tuple]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table(
            "events",
            records=rows,
            columns=[
                "source",
                "idempotency_key",
                "event_type",
                "subject",
                "occurred_at",
                "received_at",
                "origin",
                "payload",
                "body_sha256",
            ],
        )
        await connection.execute("ANALYZE events")
    finally:
        await connection.close()


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
                        help="Folder for the generated files; its dt=*/*.gz files are replaced.")
    parser.add_argument("--reuse-logs", action="store_true",
                        help="Keep the files in --logs when an earlier run wrote the same --records and --seed.")
    parser.add_argument("--missing", type=float, default=0.05,
                        help="Share of login records without a pushed twin in the ledger (0 to 1).")
    parser.add_argument("--skip-full", action="store_true", help="Skip the full reconciliation.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    result: dict = {"machine": benchlib.machine_description(), "records": args.records}
    result["duckdb"] = duckdb.__version__
    result |= generate(args.logs, args.records, args.seed, reuse=args.reuse_logs)
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
        rows, without_push = push_rows(args.logs, args.missing)
        result["pushes"] = len(rows)
        result["login_records_without_push"] = without_push
        with benchlib.postgres_database() as database:
            started = time.perf_counter()
            asyncio.run(load_pushes(database.dsn, rows))
            result["push_load_seconds"] = round(time.perf_counter() - started, 1)
            del rows
            run, full_seconds = asyncio.run(full_reconciliation(config, database.sqlalchemy_url))
        result["full_run"] = run
        result["full_seconds"] = round(full_seconds, 2)
        result["full_lines_per_second"] = round(lines / full_seconds)
        result["full_to_bare_ratio"] = round(bare_seconds / full_seconds, 3)

    result["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
