"""Open-loop latency, overload and crash runs against `hookledger serve` on PostgreSQL.

Latency and overload: one server, then fixed-rate runs at fractions of a
capacity measured before (bench_ingest.py), latency timed from each
delivery's scheduled send. Crash: a run at `--crash-fraction` of capacity
during which the whole server process group gets SIGKILL, followed by a
restart while the generator keeps sending. After every run the script checks
the ledger by id: every 2xx delivery must be stored, and no 503 delivery may
be.

    .venv/bin/python scripts/bench/bench_latency.py --capacity 2400 --fractions 0.5,0.7,0.9,1.5 --crash
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path

import asyncpg

import benchlib
from gen_deliveries import write_deliveries
from open_loop import Outcome, run_open_loop, summarize


async def _stored_keys(dsn: str, prefix: str) -> set[str]:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await connection.fetch("SELECT idempotency_key FROM events WHERE idempotency_key LIKE $1", prefix + "%")
    finally:
        await connection.close()
    return {row[0] for row in rows}


def check_ledger(database: benchlib.BenchDatabase, prefix: str, outcomes: list[Outcome]) -> dict[str, int]:
    """Compare the outcomes with the stored keys of this run."""
    stored = asyncio.run(_stored_keys(database.dsn, prefix))
    acked = {outcome.msg_id for outcome in outcomes if 200 <= outcome.status < 300}
    refused = {outcome.msg_id for outcome in outcomes if outcome.status == 503}
    unanswered = {outcome.msg_id for outcome in outcomes if outcome.status <= 0}
    return {
        "stored_rows": len(stored),
        "acked_missing": len(acked - stored),
        "refused_but_stored": len(refused & stored),
        "unanswered": len(unanswered),
        "unanswered_stored": len(unanswered & stored),
    }


def one_run(label: str, rate: float, args: argparse.Namespace, workdir: Path, database: benchlib.BenchDatabase,
            during=None, server_group: int | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Send one open-loop run and return its summary, the ledger check and the CPU use of the server."""
    prefix = f"{label}_{int(time.time())}_"
    path = workdir / f"{label}.tsv"
    write_deliveries(path, int(rate * args.duration), prefix=prefix.rstrip("_"), body_bytes=args.body_bytes)
    side = threading.Thread(target=during, daemon=True) if during else None
    loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    server_before = benchlib.group_cpu_seconds(server_group) if server_group else 0.0
    postgres_before = benchlib.postgres_cpu_seconds()
    if side:
        side.start()
    started = time.time()
    outcomes = run_open_loop(path, rate=rate, port=args.port, processes=args.processes,
                             max_connections=args.max_connections, timeout=args.timeout,
                             niceness=args.generator_nice, cpus=args.generator_cpus)
    elapsed = time.time() - started
    if side:
        side.join()
    path.unlink()
    answered = max(1, sum(1 for outcome in outcomes if outcome.status > 0))
    cpu: dict[str, float] = {"postgres_cpu_us_per_response": round(
        (benchlib.postgres_cpu_seconds() - postgres_before) / answered * 1e6, 1)}
    if server_group:
        server_cpu = benchlib.group_cpu_seconds(server_group) - server_before
        cpu["server_cpu_us_per_response"] = round(server_cpu / answered * 1e6, 1)
        cpu["server_cpu_cores"] = round(server_cpu / elapsed, 2)
    result = {"run": label, "rate": round(rate, 1), "loadavg_before": loadavg, **summarize(outcomes, args.duration),
              "wall_seconds": round(elapsed, 1), **cpu, **check_ledger(database, prefix.rstrip("_"), outcomes)}
    print(json.dumps(result), flush=True)
    return result


def overload_log_summary(log_path: Path) -> dict[str, int]:
    """Count the server's rate-limited `ingest.overloaded` lines and the deliveries they report."""
    lines = rejected = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if "ingest.overloaded" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        lines += 1
        rejected += int(record.get("rejected", 0))
    return {"overloaded_log_lines": lines, "rejected_in_log_lines": rejected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=float, required=True, help="Closed-loop capacity in deliveries/s.")
    parser.add_argument("--fractions", default="0.5,0.7,0.9,1.5", help="Rates as fractions of --capacity.")
    parser.add_argument("--duration", type=int, default=20, help="Seconds of schedule per run.")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes.")
    parser.add_argument("--processes", type=int, default=2, help="Generator processes.")
    parser.add_argument("--max-connections", type=int, default=1024, help="Generator connection cap in total.")
    parser.add_argument("--timeout", type=float, default=10.0, help="Seconds before a delivery counts as timed out.")
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--generator-nice", type=int, default=0,
                        help="Scheduling priority of the generator processes; -10 (as root) keeps it on schedule "
                        "on a box that other jobs saturate.")
    parser.add_argument("--generator-cpus", type=lambda text: [int(cpu) for cpu in text.split(",")], default=None,
                        help="Comma-separated CPUs for the generator, e.g. 0 while the script runs under "
                        "'taskset -c 1' so that the server gets the other CPU.")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--crash", action="store_true", help="Also run the kill -9 scenario.")
    parser.add_argument("--crash-fraction", type=float, default=0.7)
    parser.add_argument("--skip-rates", action="store_true", help="Only run the crash scenario.")
    parser.add_argument("--env", action="append", default=[], help="Extra NAME=VALUE for the server.")
    parser.add_argument("--server", choices=["hookledger", "echo"], default="hookledger",
                        help="echo runs the no-database twin, to see the generator's and the box's own latency.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    results = []
    log_summary: dict[str, int] = {}
    machine = benchlib.machine_description()
    with tempfile.TemporaryDirectory(prefix="hookledger-latency-") as temp, benchlib.postgres_database() as database:
        workdir = Path(temp)
        env = benchlib.server_env(database.sqlalchemy_url, workdir, **dict(item.split("=", 1) for item in args.env))
        command = [str(benchlib.VENV_BIN / "hookledger"), "serve", "--port", str(args.port),
                   "--workers", str(args.workers)]
        if args.server == "echo":
            command = [str(benchlib.VENV_BIN / "python"), str(Path(__file__).with_name("echo_app.py")),
                       "--port", str(args.port), "--workers", str(args.workers)]
        if not args.skip_rates:
            with benchlib.running_server(command, env, args.port, workdir / "server.log") as server:
                time.sleep(1.0)
                # A short warm-up at half the capacity, not reported.
                one_run("warmup", args.capacity * 0.5, argparse.Namespace(**{**vars(args), "duration": 3}),
                        workdir, database)
                for fraction in (float(value) for value in args.fractions.split(",")):
                    results.append(one_run(f"rate{int(fraction * 100)}", args.capacity * fraction, args,
                                           workdir, database, server_group=server.pid) | {"fraction": fraction})
            log_summary = overload_log_summary(workdir / "server.log")
        if args.crash:
            results.append(crash_run(args, command, env, workdir, database))
    print(json.dumps({"machine": machine, "server_log": log_summary, "results": results}, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "settings": vars(args) | {"out": str(args.out)},
                                        "server_log": log_summary, "results": results}, indent=2))


def crash_run(args: argparse.Namespace, command: list[str], env: dict[str, str], workdir: Path,
              database: benchlib.BenchDatabase) -> dict:  # type: ignore[type-arg]
    """SIGKILL the server group a third into the run, restart it a second later, and check the ledger."""
    log_path = workdir / "crash.log"
    servers = []
    log = log_path.open("ab")
    import subprocess

    first = subprocess.Popen(command, env=env, cwd=benchlib.ROOT, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    servers.append(first)
    benchlib.wait_until_listening(args.port, first)
    events: dict[str, float] = {}

    def kill_and_restart() -> None:
        time.sleep(1.5 + args.duration / 3)
        benchlib.kill_server(first)
        events["killed_at"] = time.time()
        time.sleep(1.0)
        second = subprocess.Popen(command, env=env, cwd=benchlib.ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        servers.append(second)
        benchlib.wait_until_listening(args.port, second)
        events["listening_again_at"] = time.time()

    try:
        result = one_run("crash", args.capacity * args.crash_fraction, args, workdir, database, during=kill_and_restart)
    finally:
        for server in servers:
            benchlib.stop_server(server)
        log.close()
    result["downtime_seconds"] = round(events.get("listening_again_at", 0) - events.get("killed_at", 0), 2)
    return result


if __name__ == "__main__":
    main()
