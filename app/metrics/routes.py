"""`GET /v1/metrics`, `GET /v1/metrics/{name}` and `POST /v1/metric-events`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request

from app.auth.dependencies import Principal, require_scope
from app.auth.routing import AdminRoute
from app.db.errors import storage_errors
from app.errors import BadRequestError, PayloadTooLargeError, UnprocessableError
from app.ingest.body import read_capped_body
from app.metrics.definitions import MetricsConfig
from app.metrics.events import split_batch, store_metric_events
from app.metrics.intervals import Interval
from app.query_params import reject_unexpected_query_parameters
from app.metrics.service import MAX_GROUP_LIMIT, SeriesQuery, get_series
from app.metrics.settings import MetricsSettings
from app.state import AppState

router = APIRouter(tags=["metrics"], route_class=AdminRoute)

CONFIG_KEY = "app.metrics"

# Declared after the principal, so a request without a valid token gets 401 before any 422.
StrictQuery = Annotated[None, Depends(reject_unexpected_query_parameters)]

PROBLEM_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or invalid bearer token (problem+json, WWW-Authenticate)."},
    403: {"description": "The token lacks the required scope (problem+json)."},
    503: {"description": "Storage unavailable; retry after the Retry-After seconds (problem+json)."},
}


def _metrics(state: AppState) -> tuple[MetricsConfig, MetricsSettings]:
    return state.extensions[CONFIG_KEY].config, state.extensions[CONFIG_KEY].settings


@router.get(
    "/v1/metrics",
    responses={**PROBLEM_RESPONSES, 422: {"description": "Unknown query parameter (problem+json)."}},
    summary="List metric definitions",
)
async def list_metrics(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("metrics:read"))],
    strict_query: StrictQuery,
) -> dict[str, Any]:
    """List the configured metrics with their source, event types, filters and subject support."""
    config, _ = _metrics(request.app.state.hookledger)
    return {"metrics": [definition.describe() for definition in config.definitions.values()]}


@router.get(
    "/v1/metrics/{name}",
    responses={
        **PROBLEM_RESPONSES,
        404: {"description": "Unknown metric (problem+json)."},
        422: {"description": "Invalid range or query parameter (problem+json)."},
    },
    summary="Get a metric series",
)
async def get_metric(
    request: Request,
    name: str,
    principal: Annotated[Principal, Depends(require_scope("metrics:read"))],
    strict_query: StrictQuery,
    start: Annotated[str, Query(description="Inclusive start, ISO 8601 with offset, aligned to the interval.")],
    end: Annotated[str, Query(description="Exclusive end, ISO 8601 with offset, aligned to the interval.")],
    interval: Annotated[Interval, Query(description="Bucket size; weeks start Monday 00:00 UTC.")],
    subject: Annotated[str | None, Query(max_length=255, description="Count only this subject.")] = None,
    group_by: Annotated[Literal["subject"] | None, Query(description="Return one series per subject.")] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_GROUP_LIMIT, description="Number of top subjects by total; only with group_by, default 10."),
    ] = None,
) -> dict[str, Any]:
    """Count the metric's events per bucket, split into pushed, reconciled and API shares."""
    state: AppState = request.app.state.hookledger
    config, settings = _metrics(state)
    query = SeriesQuery(name, start, end, interval, subject=subject, group_by=group_by, limit=limit)
    async with storage_errors(state.settings.retry_after_seconds, metric=name[:64]):
        async with state.database.transaction() as session:
            return await get_series(session, config, query, max_buckets=settings.max_metric_buckets)


@router.post(
    "/v1/metric-events",
    responses={
        **PROBLEM_RESPONSES,
        400: {"description": "The body is not JSON (problem+json)."},
        413: {"description": "Too many events or too large a body (problem+json)."},
        422: {"description": "Empty batch or unknown query parameter (problem+json)."},
    },
    summary="Record metric events directly",
)
async def post_metric_events(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("metrics:write"))],
    strict_query: StrictQuery,
) -> dict[str, Any]:
    """Store one event or {"events": [...]} with origin api; returns a status for each item."""
    state: AppState = request.app.state.hookledger
    config, settings = _metrics(state)
    raw = await _read_body(request, settings.max_metric_events_body_bytes, state.settings.body_timeout_seconds)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(
            f"The body is not valid JSON ({exc}); send one event object or {{\"events\": [...]}}.",
            code="malformed_payload",
        ) from exc
    items = split_batch(document)
    if not items:
        raise UnprocessableError("The events list is empty; send at least one event.", code="invalid_request")
    if len(items) > settings.max_metric_events_batch:
        raise PayloadTooLargeError(
            f"The batch has {len(items)} events and the limit is {settings.max_metric_events_batch}; "
            "split it into smaller batches.",
            code="too_many_events",
            limit=settings.max_metric_events_batch,
        )
    allowed = set(state.config.sources) | config.api_sources
    async with storage_errors(state.settings.retry_after_seconds, path="/v1/metric-events"):
        async with state.database.transaction() as session:
            results = await store_metric_events(session, items, allowed_sources=allowed, received_at=state.clock())
    summary = {status: 0 for status in ("accepted", "duplicate", "conflict", "invalid")}
    for result in results:
        summary[result.status] += 1
    return {"results": [result.as_dict() for result in results], **summary}


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """Read the capped body; the 413 names this endpoint's setting, not the per-source hook limit."""
    return await read_capped_body(
        request,
        limit,
        timeout,
        limit_name="for POST /v1/metric-events",
        remedy="split the events into smaller batches or raise HOOKLEDGER_MAX_METRIC_EVENTS_BODY_BYTES",
    )
