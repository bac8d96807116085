"""Health, readiness and Prometheus routes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.db.errors import is_outage
from app.db.migrate import schema_state
from app.errors import problem_response
from app.state import AppState

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Process liveness")
async def healthz() -> dict[str, str]:
    """Report that the process is up; checks nothing else."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable and schema current")
async def readyz(request: Request) -> Response:
    """Return 200 when the database responds and its schema is at the newest migration, else 503."""
    state: AppState = request.app.state.hookledger
    retry = {"Retry-After": str(state.settings.retry_after_seconds)}
    try:
        async with state.database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        schema = await schema_state(state.database.engine)
    except Exception as exc:
        if not is_outage(exc):
            raise
        return problem_response(
            503,
            "storage_unavailable",
            "Service unavailable",
            f"The database is unreachable ({type(exc).__name__}); check HOOKLEDGER_DATABASE_URL and the server.",
            headers=retry,
        )
    if not schema.is_current:
        return problem_response(
            503,
            "schema_outdated",
            "Service unavailable",
            f"The database schema is at revision {schema.current or 'none'} and this version needs {schema.head}; "
            "run 'hookledger migrate'.",
            headers=retry,
        )
    return Response(
        content=b'{"status":"ready","schema":"' + schema.head.encode() + b'"}', media_type="application/json"
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """Expose the process's Prometheus metrics in the text format."""
    state: AppState = request.app.state.hookledger
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
