"""Trigger reconciliation runs and read their records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.auth.dependencies import require_scope
from app.auth.routing import AdminRoute
from app.config import SOURCE_NAME
from app.errors import UnprocessableError
from app.query_params import reject_unexpected_query_parameters
from app.reconciliation.runtime import ReconciliationRuntime, runtime_of
from app.reconciliation.schemas import MAX_RUN_ID, RunList, RunOut, RunStatusName, TriggerRequest

router = APIRouter(
    route_class=AdminRoute,
    prefix="/v1/reconciliations",
    tags=["reconciliation"],
    # Authentication runs first, so a request without a valid token gets 401 before any 422.
    dependencies=[Depends(require_scope("reconcile:run")), Depends(reject_unexpected_query_parameters)],
)


def get_runtime(request: Request) -> ReconciliationRuntime:
    return runtime_of(request.app.state.hookledger)


Runtime = Annotated[ReconciliationRuntime, Depends(get_runtime)]


@router.post("", status_code=202, response_model=RunOut, summary="Start a reconciliation run")
async def start_run(body: TriggerRequest, runtime: Runtime, response: Response) -> RunOut:
    """Start a run for a source and window, or return the run already in progress for that window."""
    run = await runtime.trigger(body.source, body.start, body.end)
    response.headers["Location"] = f"/v1/reconciliations/{run.id}"
    return RunOut.model_validate(run)


@router.get("", response_model=RunList, summary="List reconciliation runs")
async def list_runs(
    runtime: Runtime,
    source: Annotated[str | None, Query(max_length=64, description="Only runs of this source.")] = None,
    status: RunStatusName | None = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Maximum number of runs returned.")] = 50,
) -> RunList:
    """List runs newest first, optionally of one source and one status."""
    if source is not None and not SOURCE_NAME.match(source):
        raise UnprocessableError(
            f"source {source!r} is not a valid source name; source names are 1-64 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit.",
            code="invalid_parameter",
            parameter="source",
        )
    runs = await runtime.reconciler.list_runs(source=source, status=status, limit=limit)
    return RunList(runs=[RunOut.model_validate(run) for run in runs])


@router.get("/{run_id}", response_model=RunOut, summary="Read one reconciliation run")
async def get_run(
    run_id: Annotated[int, Path(ge=1, le=MAX_RUN_ID, description="Run id from the listing or a Location header.")],
    runtime: Runtime,
) -> RunOut:
    """Return one run with its counts, timings and error."""
    return RunOut.model_validate(await runtime.reconciler.get_run(run_id))
