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
from collections import deque
from collections.abc import Callable


class LoopLagMonitor:
    """Samples the event loop's lag every `interval` seconds; `lag()` returns the current estimate.

    The estimate is the smallest of the last `window` samples, so one stall
    (a garbage collection, the process descheduled once) does not count as
    overload, but consecutive slow loop iterations do.
    """

    def __init__(
        self,
        *,
        interval: float = 0.010,
        window: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or window < 1:
            raise ValueError("interval must be positive and window at least 1")
        self.interval = interval
        self.clock = clock
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None
        self.samples_taken = 0

    def lag(self) -> float:
        """Return the estimated loop lag in seconds; 0.0 until `window` samples exist."""
        if len(self._samples) < (self._samples.maxlen or 1):
            return 0.0
        return min(self._samples)

    def record(self, seconds: float) -> None:
        """Add one lag sample in seconds."""
        self._samples.append(max(0.0, seconds))
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
