"""Measure the metric series query on a large PostgreSQL ledger.

The script creates its own database, applies the migrations, loads N events
with one server-side `INSERT ... SELECT FROM generate_series` per chunk, runs
`VACUUM ANALYZE`, then runs the 30-daily-bucket series of one metric through
`MetricRepository.count_by_bucket` (the code the API uses) several times. It
prints the load time, the median and p95 query latency, and the
`EXPLAIN (ANALYZE, BUFFERS)` plan. The database is dropped at the end unless
`--keep` is given.

Data shape: events spread evenly over 2026, 70% from source `auth0` (four
login event types) and 30% from `stripe`, 50,000 subjects, origins 80% push,
15% reconciliation, 5% api. The measured metric counts two auth0 event types.

    .venv/bin/python scripts/bench_metrics_query.py --rows 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade  # noqa: E402
from app.metrics.definitions import MetricDefinition  # noqa: E402
from app.metrics.intervals import Interval  # noqa: E402
from app.metrics.repository import MetricRepository, SeriesWindow  # noqa: E402

CHUNK_ROWS = 1_000_000
YEAR_SECONDS = 365 * 24 * 3600

LOAD_SQL = """
INSERT INTO events (source, idempotency_key, event_type, subject, occurred_at, received_at, origin,
                    payload, body_sha256)
SELECT CASE WHEN i % 10 < 7 THEN 'auth0' ELSE 'stripe' END,
       'evt_' || i,
       CASE WHEN i % 10 < 7 THEN (ARRAY['login.success', 'login.silent', 'login.failed', 'logout'])[1 + i % 4]
            ELSE (ARRAY['invoice.paid', 'invoice.created'])[1 + i % 2] END,
       'user_' || (hashint % 50000),
       t, t,
       CASE WHEN hashint % 20 < 16 THEN 'push' WHEN hashint % 20 < 19 THEN 'reconciliation' ELSE 'api' END,
       jsonb_build_object('n', i),
       md5(i::text) || md5((i + 1)::text)
FROM generate_series($1::bigint, $2::bigint) AS i,
     LATERAL (SELECT timestamptz '2026-01-01 00:00:00+00' + ((i * $3::float8) * interval '1 second') AS t,
                     abs(hashtextextended(i::text, 0)) AS hashint) AS derived
"""

METRIC = MetricDefinition(
    name="logins",
    description="Logins",
    source="auth0",
    event_types=("login.success", "login.silent"),
    filters=(),
    by_subject=False,
)


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_database(admin_url: str) -> str:
    name = f"hookledger_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(dsn(admin_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def load(url: str, rows: int) -> tuple[float, float]:
    """Insert `rows` events, build the indexes and vacuum; return (load seconds, vacuum seconds)."""
    connection = await asyncpg.connect(dsn(url))
    step = YEAR_SECONDS / rows
    try:
        started = time.perf_counter()
        # Building secondary indexes once after the load is faster than updating them row by row.
        # Their definitions are read back from the migrated schema, so the indexes match production.
        index_definitions = [
            record["indexdef"]
            for record in await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE conrelid = 'events'::regclass)"
            )
        ]
        await connection.execute(
            "DROP INDEX "
            + ", ".join(definition.split(" ON ")[0].split()[-1] for definition in index_definitions)
        )
        for first in range(1, rows + 1, CHUNK_ROWS):
            last = min(first + CHUNK_ROWS - 1, rows)
            await connection.execute(LOAD_SQL, first, last, step, timeout=None)
            print(f"  loaded {last:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        for definition in index_definitions:
            await connection.execute(definition, timeout=None)
        print(f"  built {len(index_definitions)} indexes ({time.perf_counter() - started:.0f} s)", flush=True)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        await connection.execute("VACUUM ANALYZE events", timeout=None)
        vacuumed = time.perf_counter() - started
    finally:
        await connection.close()
    return loaded, vacuumed


async def measure(url: str, runs: int, window: SeriesWindow) -> tuple[list[float], int, str]:
    """Run the series query `runs` times; return latencies in ms, the event count and the plan."""
    engine = create_async_engine(url, connect_args={"server_settings": {"timezone": "UTC"}})
    database = Database(engine)
    latencies = []
    total = 0
    try:
        for _ in range(runs):
            async with database.transaction() as session:
                started = time.perf_counter()
                counts = await MetricRepository(session).count_by_bucket(window)
                latencies.append((time.perf_counter() - started) * 1000)
                total = sum(count.count for count in counts)
        async with database.transaction() as session:
            statement = MetricRepository(session).series_statement(window)
            compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
            parameters = [compiled.params[name] for name in compiled.positiontup]
            connection = await session.connection()
            raw = (await connection.get_raw_connection()).driver_connection
            plan_rows = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, *parameters)
            plan = "\n".join(row[0] for row in plan_rows)
    finally:
        await engine.dispose()
    return latencies, total, plan


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="Events to load (default 10,000,000).")
    parser.add_argument("--runs", type=int, default=30, help="Query repetitions (default 30).")
    parser.add_argument(
        "--admin-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="SQLAlchemy URL of a database on the server, used to create and drop the benchmark database.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark database after the run.")
    parser.add_argument(
        "--reuse", metavar="URL", help="Measure on a database kept by an earlier run with --keep; loads nothing."
    )
    args = parser.parse_args()

    url = args.reuse or await create_database(args.admin_url)
    print(f"database {url.rsplit('/', 1)[1]}, {args.rows:,} rows", flush=True)
    try:
        if not args.reuse:
            await asyncio.to_thread(upgrade, url)
            loaded, vacuumed = await load(url, args.rows)
            print(f"load: {loaded:.1f} s ({args.rows / loaded:,.0f} rows/s), VACUUM ANALYZE: {vacuumed:.1f} s")
        start = datetime(2026, 6, 1, tzinfo=UTC)
        window = SeriesWindow(METRIC, start, start + timedelta(days=30), Interval.DAY)
        latencies, total, plan = await measure(url, args.runs, window)
    finally:
        if args.keep or args.reuse:
            print(f"kept database: {url}")
        else:
            await drop_database(args.admin_url, url)

    print(f"query: 30 daily buckets, {total:,} events counted, {args.runs} runs")
    print(f"  median {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
          f"min {min(latencies):.1f} ms, max {max(latencies):.1f} ms")
    print("plan:")
    print(plan)


if __name__ == "__main__":
    asyncio.run(main())
