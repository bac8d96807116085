"""Open-loop load generator: send pre-signed deliveries at a fixed rate, timed from the scheduled send.

Delivery i is due at start + i / rate whatever happened to earlier ones, so a
slow server cannot slow the generator down (no coordinated omission). The
latency of a delivery runs from its scheduled time, not from when a
connection became free. A due delivery takes an idle keep-alive connection or
opens a new one, up to `max_connections`; beyond that it waits, and the wait
counts as latency.

Several processes can share the rate (`processes`); each takes every n-th
delivery of the file and its own slice of the schedule. Every delivery gets
one record: id, status (0 for a socket error, -1 for a timeout), whether a
Retry-After header came back, the latency in seconds, and the service time:
the seconds from writing the request to the end of the response. The
difference is time spent waiting for a connection slot or for the
generator itself, which on a CPU-saturated box can be most of the latency.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    uvloop = None


@dataclass(frozen=True)
class Outcome:
    msg_id: str
    status: int
    retry_after: bool
    latency: float
    service: float = 0.0


TIMEOUT_STATUS = -1
SOCKET_ERROR_STATUS = 0


def load_requests(path: Path, host: str, port: int, target: str) -> list[tuple[str, bytes]]:
    """Build raw HTTP/1.1 requests from a gen_deliveries.py file."""
    requests = []
    for line in path.read_bytes().splitlines():
        msg_id, timestamp, signature, body = line.split(b"\t", 3)
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"webhook-id: {msg_id.decode()}\r\nwebhook-timestamp: {timestamp.decode()}\r\n"
            f"webhook-signature: {signature.decode()}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        requests.append((msg_id.decode(), head + body))
    return requests


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, payload: bytes) -> tuple[int, bool, bool]:
        """Send one request; return (status, has Retry-After, keep-alive)."""
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        retry_after = False
        keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "retry-after":
                retry_after = True
            elif name == "connection" and value.strip().lower() == "close":
                keep_alive = False
        if length:
            await self.reader.readexactly(length)
        return status, retry_after, keep_alive

    def close(self) -> None:
        self.writer.close()


async def _run(
    requests: list[tuple[str, bytes]],
    rate: float,
    host: str,
    port: int,
    max_connections: int,
    timeout: float,
    start_at: float,
) -> list[Outcome]:
    idle: list[_Connection] = []
    open_count = 0
    slots = asyncio.Semaphore(max_connections)
    outcomes: list[Outcome] = []
    pending: set[asyncio.Task[None]] = set()

    async def send(msg_id: str, payload: bytes, due: float) -> None:
        nonlocal open_count
        async with slots:
            connection = idle.pop() if idle else None
            status, retry_after, keep = SOCKET_ERROR_STATUS, False, False
            written = time.time()
            try:
                # asyncio.timeout costs less CPU than wait_for, which wraps each call in a task.
                if connection is None:
                    async with asyncio.timeout(timeout):
                        reader, writer = await asyncio.open_connection(host, port)
                    connection = _Connection(reader, writer)
                    open_count += 1
                written = time.time()
                async with asyncio.timeout(timeout):
                    status, retry_after, keep = await connection.exchange(payload)
            except asyncio.TimeoutError:
                status = TIMEOUT_STATUS
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                status = SOCKET_ERROR_STATUS
            finished = time.time()
            if connection is not None:
                if keep and status > 0:
                    idle.append(connection)
                else:
                    connection.close()
                    open_count -= 1
        outcomes.append(Outcome(msg_id, status, retry_after, finished - due, finished - written))

    while time.time() < start_at:
        await asyncio.sleep(min(0.01, start_at - time.time()))
    for index, (msg_id, payload) in enumerate(requests):
        due = start_at + index / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(msg_id, payload, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending)
    for connection in idle:
        connection.close()
    return outcomes


def _worker(args: tuple) -> list[Outcome]:  # type: ignore[type-arg]
    path, host, port, target, rate, share, shares, max_connections, timeout, start_at, niceness, cpus = args
    if cpus:
        os.sched_setaffinity(0, cpus)
    if niceness:
        # A negative value (root only) keeps the generator on schedule when other jobs fill the CPU,
        # so the server, not the generator, is the process that runs short.
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    requests = load_requests(path, host, port, target)[share::shares]
    if uvloop is not None:
        uvloop.install()
    return asyncio.run(_run(requests, rate / shares, host, port, max_connections, timeout, start_at + share / rate))


def run_open_loop(
    path: Path,
    *,
    rate: float,
    host: str = "127.0.0.1",
    port: int = 8000,
    target: str = "/v1/hooks/bench",
    processes: int = 1,
    max_connections: int = 512,
    timeout: float = 10.0,
    niceness: int = 0,
    cpus: list[int] | None = None,
) -> list[Outcome]:
    """Send every delivery in `path` at `rate` per second in total; return one outcome per delivery.

    `niceness` is the scheduling priority of the generator processes (0 leaves it unchanged), and
    `cpus` the CPUs they may run on (None leaves the affinity unchanged).
    """
    start_at = time.time() + 1.0 + 0.3 * processes
    jobs = [
        (path, host, port, target, rate, share, processes, max_connections // processes, timeout, start_at, niceness,
         cpus)
        for share in range(processes)
    ]
    if processes == 1:
        if niceness or cpus:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                return pool.map(_worker, jobs)[0]
        return _worker(jobs[0])
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return [outcome for part in pool.map(_worker, jobs) for outcome in part]


def summarize(outcomes: list[Outcome], seconds: float) -> dict[str, float | int]:
    """Count outcomes and give latency percentiles (ms) over the 2xx responses and over all responses."""
    ok = sorted(outcome.latency for outcome in outcomes if 200 <= outcome.status < 300)
    answered = sorted(outcome.latency for outcome in outcomes if outcome.status > 0)

    def percentile(values: list[float], fraction: float) -> float:
        if not values:
            return 0.0
        return round(values[min(len(values) - 1, int(fraction * len(values)))] * 1e3, 2)

    refused = [outcome for outcome in outcomes if outcome.status == 503]
    return {
        "sent": len(outcomes),
        "ok": len(ok),
        "ok_per_second": round(len(ok) / seconds, 1),
        "status_503": len(refused),
        "status_503_with_retry_after": sum(outcome.retry_after for outcome in refused),
        "other_status": sum(1 for outcome in outcomes if outcome.status > 0 and outcome.status != 503 and not 200 <= outcome.status < 300),
        "timeouts": sum(1 for outcome in outcomes if outcome.status == TIMEOUT_STATUS),
        "socket_errors": sum(1 for outcome in outcomes if outcome.status == SOCKET_ERROR_STATUS),
        "ok_p50_ms": percentile(ok, 0.50),
        "ok_p99_ms": percentile(ok, 0.99),
        "ok_p999_ms": percentile(ok, 0.999),
        "ok_max_ms": percentile(ok, 1.0),
        "all_p50_ms": percentile(answered, 0.50),
        "all_p99_ms": percentile(answered, 0.99),
        "all_p999_ms": percentile(answered, 0.999),
        "refused_p50_ms": percentile(sorted(outcome.latency for outcome in refused), 0.50),
        "refused_p99_ms": percentile(sorted(outcome.latency for outcome in refused), 0.99),
        "refused_max_ms": percentile(sorted(outcome.latency for outcome in refused), 1.0),
        "ok_service_p50_ms": percentile(sorted(outcome.service for outcome in outcomes if 200 <= outcome.status < 300), 0.50),
        "ok_service_p99_ms": percentile(sorted(outcome.service for outcome in outcomes if 200 <= outcome.status < 300), 0.99),
        "refused_service_p50_ms": percentile(sorted(outcome.service for outcome in refused), 0.50),
        "refused_service_p99_ms": percentile(sorted(outcome.service for outcome in refused), 0.99),
    }
