"""The reconciler of one application instance, and the background tasks of runs it started."""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from app.db.models import ReconciliationRun
from app.reconciliation.service import Reconciler
from app.state import AppState

log = structlog.get_logger("app.reconciliation")

RUNTIME_KEY = "app.reconciliation.runtime"


class ReconciliationRuntime:
    """Starts runs in background tasks and cancels them when the application stops."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.tasks: set[asyncio.Task[ReconciliationRun]] = set()

    async def trigger(self, source: str, start: datetime | None, end: datetime | None) -> ReconciliationRun:
        """Claim the window and start the run in the background; a window already running returns that run."""
        window = self.reconciler.window_for(source, start, end)
        claim = await self.reconciler.claim(source, window)
        if claim.acquired:
            task = asyncio.create_task(self.reconciler.execute(claim.run.id), name=f"reconciliation-run-{claim.run.id}")
            self.tasks.add(task)
            task.add_done_callback(self._forget)
        else:
            log.info("reconciliation.run_already_running", run_id=claim.run.id, source=source)
        return claim.run

    def _forget(self, task: asyncio.Task[ReconciliationRun]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reconciliation.task_failed", task=task.get_name(), error=repr(task.exception()))

    async def wait_idle(self) -> None:
        """Wait until every run started here has finished."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def shutdown(self) -> None:
        """Cancel running tasks; each marks its run failed before it ends."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("reconciliation.tasks_cancelled", count=len(tasks))


def runtime_of(state: AppState) -> ReconciliationRuntime:
    return state.extensions[RUNTIME_KEY]
