"""`POST /v1/hooks/{source}`: verify a signed delivery on its raw bytes and store it once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response

from app.config import SOURCE_NAME, Source
from app.db.models import Origin
from app.errors import BadRequestError, HookledgerError, NotFoundError, problem_response
from app.ingest.body import decode_content_encoding, parse_body, read_capped_body
from app.ingest.extract import (
    ExtractedEvent,
    check_storable,
    extract_event_type,
    extract_occurred_at,
    extract_subject,
    resolve_idempotency_key,
)
from app.ingest.batcher import IngestBatcher
from app.ingest.loop_lag import LoopLagMonitor
from app.ingest.schemes.base import Delivery, VerificationError, body_sha256
from app.ingest.service import IngestResult
from app.state import AppState

BATCHER_KEY = "app.ingest.batcher"
# Header name prefixes of the signature schemes; a repeated header with one of
# them is rejected because only one copy could be verified.
SIGNATURE_HEADER_PREFIXES = (
    "webhook-",
    "svix-",
    "stripe-",
    "x-hub-",
    "x-github-",
    "x-shopify-",
    "x-slack-",
    "x-twilio-",
    "i-twilio-",
)


@asynccontextmanager
async def batcher_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the group-commit batcher while the application runs; flush what is queued on shutdown."""
    state: AppState = app.state.hookledger
    settings = state.settings
    flushers = settings.ingest_flushers or (1 if state.database.dialect == "sqlite" else 2)
    monitor = LoopLagMonitor() if settings.ingest_max_queue_delay_ms else None
    batcher = IngestBatcher(
        state.database,
        max_batch_rows=settings.ingest_batch_max_rows,
        max_pending=settings.ingest_max_pending,
        flushers=flushers,
        retry_after_seconds=settings.retry_after_seconds,
        max_queue_delay=settings.ingest_max_queue_delay_ms / 1000 if monitor else None,
        loop_lag=monitor.lag if monitor else None,
    )
    if monitor:
        monitor.start()
    batcher.start()
    state.extensions[BATCHER_KEY] = batcher
    try:
        yield
    finally:
        await batcher.close()
        if monitor:
            await monitor.stop()
        state.extensions.pop(BATCHER_KEY, None)


# FastAPI runs an included router's lifespan inside the application's, so the
# batcher starts after the database and stops before it.
router = APIRouter(tags=["ingest"], lifespan=batcher_lifespan)

PROBLEM_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "Missing header or malformed payload (problem+json)."},
    401: {"description": "Invalid signature or timestamp out of tolerance (problem+json)."},
    404: {"description": "Unknown source (problem+json)."},
    409: {"description": "Idempotency conflict: the key was stored with another body (problem+json)."},
    413: {"description": "Body larger than the source's cap (problem+json)."},
    415: {"description": "Unsupported Content-Encoding (problem+json)."},
    422: {"description": "The event lacks a field or a field is invalid (problem+json)."},
    503: {
        "description": "Storage unavailable, or the service is overloaded (ingest_overloaded: too many "
        "deliveries in progress or too long a wait); retry after the Retry-After seconds (problem+json)."
    },
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
            raise NotFoundError(unknown_source_detail(source, state.config.sources), code="unknown_source")
        batcher: IngestBatcher = state.extensions[BATCHER_KEY]
        batcher.check_admission()
        # The body is read before a place is taken, so clients that stall mid-body
        # cannot hold places; each gets 408 after the body timeout.
        raw = await read_capped_body(
            request,
            configured.max_body_bytes or state.settings.max_body_bytes,
            timeout=state.settings.body_timeout_seconds,
        )
        with batcher.admission():
            result = await _ingest(state, batcher, configured, request, raw)
    except (HookledgerError, VerificationError) as exc:
        state.ingest_metrics.deliveries.labels(metric_source, exc.code).inc()
        state.ingest_metrics.latency.labels(metric_source).observe(time.perf_counter() - started)
        raise
    state.ingest_metrics.deliveries.labels(metric_source, result.status).inc()
    state.ingest_metrics.latency.labels(metric_source).observe(time.perf_counter() - started)
    if isinstance(result, HandshakeResult):
        return Response(orjson.dumps(result.body), media_type="application/json")
    return Response(
        orjson.dumps({"status": result.status, "event_id": result.event_id}), media_type="application/json"
    )


@dataclass(frozen=True)
class HandshakeResult:
    """The reply to a verified sender handshake, which stores nothing (Slack's url_verification)."""

    body: dict[str, Any]
    status: str = "handshake"


def unknown_source_detail(name: str, sources: Mapping[str, Source]) -> str:
    """Say that a source is not configured, and how to configure it where the name is valid."""
    shown = name[:64]
    configured = ", ".join(sorted(sources)) or "none"
    if SOURCE_NAME.match(name):
        return (
            f"Source {shown!r} is not configured (configured sources: {configured}); add [sources.{shown}] "
            "to the configuration file or post to a configured source."
        )
    return (
        f"Source {shown!r} is not configured, and it is not a valid source name (1-64 lower-case letters, "
        f"digits, '-' or '_'); post to a configured source: {configured}."
    )


def reject_repeated_headers(request: Request, names: Iterable[str]) -> None:
    """Reject a delivery that repeats a header the source reads, since only one copy could be checked."""
    wanted = set(names)
    seen: set[str] = set()
    for raw_name, _ in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name not in wanted and not name.startswith(SIGNATURE_HEADER_PREFIXES):
            continue
        if name in seen:
            raise BadRequestError(
                f"Header {name} appears more than once; send it once, as the sender produced it.",
                code="malformed_header",
                header=name,
            )
        seen.add(name)


async def _ingest(
    state: AppState, batcher: IngestBatcher, source: Source, request: Request, raw: bytes
) -> IngestResult | HandshakeResult:
    reject_repeated_headers(request, source.header_names)
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
    handshake = getattr(source.scheme, "handshake_response", None)
    reply = handshake(payload) if handshake is not None else None
    if reply is not None:
        return HandshakeResult(reply)
    check_storable(payload)
    event = ExtractedEvent(
        idempotency_key=resolve_idempotency_key(source.key_spec, headers, payload, body, verified.header_key),
        event_type=extract_event_type(payload, source.event_type_pointer, source.event_type_header, headers),
        subject=extract_subject(payload, source.subject_pointer),
        occurred_at=extract_occurred_at(payload, source.occurred_at_pointer, verified.signed_at or now),
    )
    return await batcher.store(
        source=source.name,
        event=event,
        payload=payload,
        body_hash=body_sha256(body),
        origin=Origin.PUSH,
        received_at=now,
    )


__all__ = ["router", "problem_response"]
