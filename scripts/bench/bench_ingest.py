"""Closed-loop capacity of the hook route with wrk: durable ingest next to the no-database echo.

For each repeat the script runs the echo twin and then `hookledger serve` on
the same uvicorn settings, each with freshly signed deliveries, a warm-up and
a measured wrk run. After each hookledger run it checks that the stored rows
equal the 2xx responses. It prints one JSON document with every run and the
medians.

    .venv/bin/python scripts/bench/bench_ingest.py --workers 2 --duration 20 --repeats 3

Needs wrk (Debian package `wrk`) and PostgreSQL at 127.0.0.1:5432 (user
postgres); the database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import benchlib
from gen_deliveries import write_deliveries

LUA = Path(__file__).with_name("deliveries.lua")


@dataclass
class WrkResult:
    seconds: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def responses(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def rps(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0


@dataclass
class Run:
    target: str
    repeat: int
    rps: float
    ok_rps: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    server_cpu_us_per_request: float
    postgres_cpu_us_per_request: float
    box_busy_cores: float = 0.0
    wrk_cpu_cores: float = 0.0
    batches: int | None = None
    batched_rows: int | None = None
    stored_rows: int | None = None
    ok_responses: int = 0
    ledger_matches: bool | None = None
    notes: list[str] = field(default_factory=list)


def run_wrk(url: str, deliveries: Path, threads: int, connections: int, duration: int) -> WrkResult:
    """Run wrk once with the deliveries file and parse the Lua summary lines."""
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
        "-s", str(LUA), url, "--", str(deliveries), str(threads),
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=True).stdout
    seconds_match = re.search(r"requests in ([\d.]+)(m?s)", output)
    if seconds_match is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    seconds = float(seconds_match.group(1)) / (1000 if seconds_match.group(2) == "ms" else 1)
    statuses = {int(code): int(count) for code, count in re.findall(r"^status (\d+) (\d+)$", output, re.M)}
    errors = {name: int(count) for name, count in re.findall(r"(connect|read|write|timeout)=(\d+)", output)}
    latency = {name: float(value) for name, value in re.findall(r"(p50|p90|p99|p999|max)=([\d.]+)", output)}
    return WrkResult(seconds, statuses, errors, latency)


def start_profilers(process_group: int, out_dir: Path, label: str, seconds: int) -> list[subprocess.Popen]:
    """Sample every Python process of the server with py-spy (collapsed stacks, one file per process)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profilers = []
    for pid in benchlib.group_pids(process_group):
        if not benchlib.is_python(pid):
            continue
        command = [
            str(benchlib.VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(max(1, seconds - 2)),
            "--rate", "200", "--format", "raw", "--nonblocking", "-o", str(out_dir / f"{label}_{pid}.txt"),
        ]
        profilers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return profilers


def measure(
    target: str, repeat: int, url: str, workdir: Path, args: argparse.Namespace, process_group: int,
    database: benchlib.BenchDatabase | None,
) -> Run:
    prefix = f"{target}_{repeat}_{int(time.time())}"
    warmup_file = workdir / f"{prefix}_warmup.tsv"
    measured_file = workdir / f"{prefix}.tsv"
    write_deliveries(warmup_file, args.warmup * args.max_rate, prefix=prefix + "_w", body_bytes=args.body_bytes)
    write_deliveries(measured_file, args.duration * args.max_rate, prefix=prefix + "_m", body_bytes=args.body_bytes)
    warmup = run_wrk(url, warmup_file, args.threads, args.connections, args.warmup)
    if database is not None:
        benchlib.checkpoint(database)
    profilers = start_profilers(process_group, args.profile, f"{target}_{repeat}", args.duration) if args.profile else []
    server_before = benchlib.group_cpu_seconds(process_group)
    postgres_before = benchlib.postgres_cpu_seconds()
    box_before = benchlib.box_busy_seconds()
    wrk_before = benchlib.children_cpu_seconds()
    result = run_wrk(url, measured_file, args.threads, args.connections, args.duration)
    box_busy = benchlib.box_busy_seconds() - box_before
    wrk_cpu = benchlib.children_cpu_seconds() - wrk_before
    for profiler in profilers:
        profiler.wait(timeout=60)
    server_cpu = benchlib.group_cpu_seconds(process_group) - server_before
    postgres_cpu = benchlib.postgres_cpu_seconds() - postgres_before
    responses = max(result.responses, 1)
    run = Run(
        target=target,
        repeat=repeat,
        rps=round(result.rps, 1),
        ok_rps=round(result.ok / result.seconds, 1),
        statuses=result.statuses,
        socket_errors=result.socket_errors,
        latency_ms=result.latency_ms,
        server_cpu_us_per_request=round(server_cpu / responses * 1e6, 1),
        postgres_cpu_us_per_request=round(postgres_cpu / responses * 1e6, 1),
        ok_responses=warmup.ok + result.ok,
        box_busy_cores=round(box_busy / result.seconds, 2),
        wrk_cpu_cores=round(wrk_cpu / result.seconds, 2),
    )
    if result.seconds < args.duration * 0.95:
        run.notes.append(f"the deliveries ran out after {result.seconds:.1f} s; raise --max-rate")
    if database is not None:
        run.stored_rows = benchlib.count_rows(database, prefix)
        run.ledger_matches = run.stored_rows == run.ok_responses
    warmup_file.unlink()
    measured_file.unlink()
    return run


def batch_counts(log_path: Path) -> tuple[int | None, int | None]:
    """Sum the batch counters that each worker logs when its batcher stops."""
    batches = rows = 0
    found = False
    for line in log_path.read_text(errors="replace").splitlines():
        if "ingest.batcher_stopped" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        found = True
        batches += int(record.get("batches", 0))
        rows += int(record.get("rows", 0))
    return (batches, rows) if found else (None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes.")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads.")
    parser.add_argument("--connections", type=int, default=64, help="wrk keep-alive connections.")
    parser.add_argument("--duration", type=int, default=20, help="Measured seconds per run.")
    parser.add_argument("--warmup", type=int, default=5, help="Warm-up seconds per run.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per target; the medians are reported.")
    parser.add_argument("--max-rate", type=int, default=9000, help="Deliveries generated per second of run.")
    parser.add_argument("--body-bytes", type=int, default=1024, help="Approximate body size.")
    parser.add_argument("--targets", default="echo,hookledger", help="Comma-separated: echo, hookledger.")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--env", action="append", default=[], help="Extra NAME=VALUE for the servers.")
    parser.add_argument("--out", type=Path, help="Also write the JSON results here.")
    parser.add_argument("--profile", type=Path, help="Record py-spy collapsed stacks of the servers into this folder.")
    args = parser.parse_args()

    targets = args.targets.split(",")
    extra_env = dict(item.split("=", 1) for item in args.env)
    runs: list[Run] = []
    machine = benchlib.machine_description()
    url = f"http://127.0.0.1:{args.port}/v1/hooks/bench"
    with tempfile.TemporaryDirectory(prefix="hookledger-bench-") as temp, benchlib.postgres_database() as database:
        workdir = Path(temp)
        env = benchlib.server_env(database.sqlalchemy_url, workdir, **extra_env)
        commands = {
            "echo": [str(benchlib.VENV_BIN / "python"), str(Path(__file__).with_name("echo_app.py")),
                     "--port", str(args.port), "--workers", str(args.workers)],
            "hookledger": [str(benchlib.VENV_BIN / "hookledger"), "serve",
                           "--port", str(args.port), "--workers", str(args.workers)],
        }
        for repeat in range(args.repeats):
            for target in targets:
                log_path = workdir / f"{target}_{repeat}.log"
                with benchlib.running_server(commands[target], env, args.port, log_path) as process:
                    time.sleep(1.0)
                    run = measure(target, repeat, url, workdir, args, process.pid,
                                  database if target == "hookledger" else None)
                run.batches, run.batched_rows = batch_counts(log_path)
                runs.append(run)
                print(json.dumps(asdict(run)), flush=True)

    summary = {"machine": machine, "settings": vars(args) | {"out": str(args.out)}, "runs": [asdict(r) for r in runs]}
    medians = {}
    for target in targets:
        mine = [run for run in runs if run.target == target]
        medians[target] = {
            "ok_rps": statistics.median(run.ok_rps for run in mine),
            "server_cpu_us_per_request": statistics.median(run.server_cpu_us_per_request for run in mine),
            "postgres_cpu_us_per_request": statistics.median(run.postgres_cpu_us_per_request for run in mine),
            "p50_ms": statistics.median(run.latency_ms.get("p50", 0) for run in mine),
            "p99_ms": statistics.median(run.latency_ms.get("p99", 0) for run in mine),
        }
    if "echo" in medians and "hookledger" in medians and medians["echo"]["ok_rps"]:
        medians["durable_to_echo_ratio"] = round(medians["hookledger"]["ok_rps"] / medians["echo"]["ok_rps"], 3)
    summary["medians"] = medians
    print(json.dumps({"machine": machine, "medians": medians}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
