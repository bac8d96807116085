"""Event-loop lag: how late the loop runs a short timer, sampled by a background task.

When the process is short of CPU, work waits in the loop's ready queue and in
socket buffers before any handler runs. A handler cannot time that wait
directly, but a timer that fires late by the same amount shows it: the task
sleeps `interval` seconds and records how much later than that it woke up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class LoopLagMonitor:
    """Samples the event loop's lag every `interval` seconds; `lag()` returns the latest sample."""

    def __init__(self, *, interval: float = 0.010, clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        self.interval = interval
        self.clock = clock
        self._latest = 0.0
        self._task: asyncio.Task[None] | None = None
        self.samples_taken = 0

    def lag(self) -> float:
        """Return the latest lag sample in seconds; 0.0 before the first one."""
        return self._latest

    def record(self, seconds: float) -> None:
        """Store one lag sample in seconds; a negative one counts as 0."""
        self._latest = max(0.0, seconds)
        self.samples_taken += 1

    def start(self) -> None:
        """Start sampling on the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ingest-loop-lag")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            due = self.clock() + self.interval
            await asyncio.sleep(self.interval)
            self.record(self.clock() - due)
