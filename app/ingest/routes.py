"""`POST /v1/hooks/{source}`: verify a signed delivery on its raw bytes and store it once."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request, Response

from app.db.errors import storage_errors
from app.db.models import Origin
from app.errors import HookledgerError, NotFoundError, problem_response
from app.ingest.body import decode_content_encoding, parse_body, read_capped_body
from app.ingest.extract import (
    ExtractedEvent,
    check_storable,
    extract_event_type,
    extract_occurred_at,
    extract_subject,
    resolve_idempotency_key,
)
from app.ingest.schemes.base import Delivery, VerificationError, body_sha256
from app.ingest.service import store_event
from app.state import AppState

router = APIRouter(tags=["ingest"])

PROBLEM_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Missing header or malformed payload (problem+json)."},
    401: {"description": "Invalid signature or timestamp out of tolerance (problem+json)."},
    404: {"description": "Unknown source (problem+json)."},
    409: {"description": "Idempotency conflict: the key was stored with another body (problem+json)."},
    413: {"description": "Body larger than the source's cap (problem+json)."},
    415: {"description": "Unsupported Content-Encoding (problem+json)."},
    422: {"description": "The event lacks a field or a field is invalid (problem+json)."},
    503: {"description": "Storage unavailable; retry after the Retry-After seconds (problem+json)."},
}


@router.post(
    "/v1/hooks/{source}",
    responses=PROBLEM_RESPONSES,
    summary="Receive a signed event delivery",
)
async def receive_hook(source: str, request: Request) -> Response:
    """Verify a signed delivery and store its event exactly once; 200 only after the commit."""
    state: AppState = request.app.state.hookledger
    started = time.perf_counter()
    configured = state.config.sources.get(source)
    metric_source = source if configured is not None else "unknown"
    try:
        if configured is None:
            raise NotFoundError(
                f"Source {source[:64]!r} is not configured; add [sources.{source[:64]}] to the configuration "
                "file or post to a configured source.",
                code="unknown_source",
            )
        result = await _ingest(state, configured, request)
    except (HookledgerError, VerificationError) as exc:
        state.ingest_metrics.deliveries.labels(metric_source, exc.code).inc()
        state.ingest_metrics.latency.labels(metric_source).observe(time.perf_counter() - started)
        raise
    state.ingest_metrics.deliveries.labels(metric_source, result.status).inc()
    state.ingest_metrics.latency.labels(metric_source).observe(time.perf_counter() - started)
    return Response(
        orjson.dumps({"status": result.status, "event_id": result.event_id}), media_type="application/json"
    )


async def _ingest(state: AppState, source, request: Request):  # type: ignore[no-untyped-def]
    limit = source.max_body_bytes or state.settings.max_body_bytes
    raw = await read_capped_body(request, limit)
    body = decode_content_encoding(
        raw,
        request.headers.get("content-encoding"),
        allowed=source.decompress,
        limit=source.max_decompressed_bytes,
    )
    headers = {name: value for name, value in request.headers.items()}
    content_type = headers.get("content-type", "")
    now = state.clock()
    verified = source.scheme.verify(Delivery(headers=headers, body=body, url=str(request.url), content_type=content_type), now)

    payload = parse_body(body, content_type)
    check_storable(payload)
    event = ExtractedEvent(
        idempotency_key=resolve_idempotency_key(source.key_spec, headers, payload, body, verified.header_key),
        event_type=extract_event_type(payload, source.event_type_pointer, source.event_type_header, headers),
        subject=extract_subject(payload, source.subject_pointer),
        occurred_at=extract_occurred_at(payload, source.occurred_at_pointer, verified.signed_at or now),
    )
    async with storage_errors(state.settings.retry_after_seconds, source=source.name):
        async with state.database.transaction() as session:
            result = await store_event(
                session,
                source=source.name,
                event=event,
                payload=payload,
                body_hash=body_sha256(body),
                origin=Origin.PUSH,
                received_at=now,
            )
    return result


__all__ = ["router", "problem_response"]
