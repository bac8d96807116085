"""Shared pieces of the ingest benchmarks: a throw-away database, servers, CPU accounting.

Every server listens on 127.0.0.1 and is stopped by the context manager that
started it. The PostgreSQL database is created with a unique name and dropped
afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from gen_deliveries import BENCH_SECRET

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ADMIN_DSN = os.environ.get(
    "HOOKLEDGER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BENCH_CONFIG = """\
[sources.bench]
scheme = "standard-webhooks"
secrets_env = ["HOOKLEDGER_BENCH_SECRET"]
subject_pointer = "/data/user_id"
"""


@dataclass
class BenchDatabase:
    name: str
    dsn: str

    @property
    def sqlalchemy_url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@contextlib.contextmanager
def postgres_database() -> Iterator[BenchDatabase]:
    """Create a uniquely named PostgreSQL database, migrate it, and drop it on exit."""
    name = f"hookledger_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    database = BenchDatabase(name, dsn)
    try:
        run_checked(
            [str(VENV_BIN / "hookledger"), "migrate"],
            env=server_env(database.sqlalchemy_url, Path("/tmp")),
        )
        yield database
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _fetchval(dsn: str, query: str, *args: object) -> object:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


def count_rows(database: BenchDatabase, prefix: str | None = None) -> int:
    """Count ledger rows, optionally only those whose key starts with `prefix`."""
    if prefix is None:
        return int(asyncio.run(_fetchval(database.dsn, "SELECT count(*) FROM events")))
    query = "SELECT count(*) FROM events WHERE idempotency_key LIKE $1"
    return int(asyncio.run(_fetchval(database.dsn, query, prefix + "%")))


def checkpoint(database: BenchDatabase) -> None:
    asyncio.run(_fetchval(database.dsn, "CHECKPOINT"))


def run_checked(command: list[str], env: dict[str, str]) -> None:
    completed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr[-2000:]}"
        )


def server_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """Return the environment of a benchmark server: its database, configuration and secret."""
    config_path = workdir / "bench.toml"
    config_path.write_text(BENCH_CONFIG, encoding="utf-8")
    env = dict(os.environ)
    env.update(
        {
            "HOOKLEDGER_DATABASE_URL": database_url,
            "HOOKLEDGER_CONFIG": str(config_path),
            "HOOKLEDGER_BENCH_SECRET": BENCH_SECRET,
            "HOOKLEDGER_DATA_DIR": str(workdir),
            "HOOKLEDGER_LOG_FORMAT": "json",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running_server(
    command: list[str], env: dict[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen]:
    """Start a server in its own process group, wait until it responds, and stop it on exit."""
    log = log_path.open("ab")
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until_listening(port, process)
        yield process
    finally:
        stop_server(process)
        log.close()


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.returncode} before listening on port {port}"
            )
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout} seconds")


def stop_server(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Send SIGTERM to the server's process group; SIGKILL it if it has not exited in time."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def kill_server(process: subprocess.Popen) -> None:
    """SIGKILL every process of the server's group at once (a crash, no shutdown code runs)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


def group_cpu_seconds(process_group: int) -> float:
    """Sum utime+stime of the live processes in a process group."""
    return sum(cpu for name, group, cpu in _processes() if group == process_group)


def group_pids(process_group: int) -> list[int]:
    """Return the live process ids of a process group."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2 :].split()[2]) == process_group:
                pids.append(int(entry))
    return pids


def is_python(pid: int) -> bool:
    try:
        return "python" in os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False


def postgres_cpu_seconds() -> float:
    """Sum utime+stime of every live `postgres` process, other sessions' backends included."""
    return sum(cpu for name, group, cpu in _processes() if name == "postgres")


def _processes() -> Iterator[tuple[str, int, float]]:
    """Yield (command name, process group, CPU seconds) for every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        # After the name: state, ppid, pgrp, ... utime is the 12th field and stime the 13th.
        fields = text[text.rindex(")") + 2 :].split()
        yield name, int(fields[2]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def box_busy_seconds() -> float:
    """Return the CPU seconds all cores spent outside idle and iowait since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def children_cpu_seconds() -> float:
    """Return the CPU seconds of this process's finished children (wrk runs)."""
    times = os.times()
    return times.children_user + times.children_system


def machine_description() -> dict[str, str]:
    """Return nproc, CPU model, Python and PostgreSQL versions for the results table."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    pg_version = str(asyncio.run(_fetchval(ADMIN_DSN, "SHOW server_version")))
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": sys.version.split()[0],
        "postgresql": pg_version,
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
