"""A no-database twin of the hook route, for the benchmark's throughput ratio.

It runs the product route's work up to the storage call: the same middleware
and error handlers, the capped body read, signature verification, parsing,
field extraction and the Prometheus counters, and responds with the same JSON
shape. Nothing is stored, so `durable rps / echo rps` shows what durability
costs on the same server settings. This app is for benchmarks only and is not
part of the product's routes.

    python scripts/bench/echo_app.py --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry

from app.config import load_config
from app.errors import HookledgerError, NotFoundError, UnhandledErrorMiddleware, install_error_handlers
from app.ingest.body import decode_content_encoding, parse_body, read_capped_body
from app.ingest.extract import (
    ExtractedEvent,
    check_storable,
    extract_event_type,
    extract_occurred_at,
    extract_subject,
    resolve_idempotency_key,
)
from app.ingest.routes import reject_repeated_headers
from app.ingest.schemes.base import Delivery, VerificationError, body_sha256
from app.logs import RequestIdMiddleware
from app.observability import IngestMetrics
from app.settings import Settings
from app.state import utc_now


def create_echo_app() -> FastAPI:
    """Build the echo app from the same HOOKLEDGER_* environment as `hookledger serve`."""
    settings = Settings()
    config = load_config(settings.config)
    metrics = IngestMetrics(CollectorRegistry())
    event_ids = itertools.count(1)
    app = FastAPI(title="hookledger-echo")
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)

    @app.post("/v1/hooks/{source}")
    async def receive_hook(source: str, request: Request) -> Response:
        started = time.perf_counter()
        configured = config.sources.get(source)
        metric_source = source if configured is not None else "unknown"
        try:
            if configured is None:
                raise NotFoundError(
                    f"Source {source[:64]!r} is not configured.", code="unknown_source"
                )
            limit = configured.max_body_bytes or settings.max_body_bytes
            raw = await read_capped_body(request, limit, timeout=settings.body_timeout_seconds)
            reject_repeated_headers(request, configured.header_names)
            body = decode_content_encoding(
                raw,
                request.headers.get("content-encoding"),
                allowed=configured.decompress,
                limit=configured.max_decompressed_bytes,
            )
            headers = {name: value for name, value in request.headers.items()}
            content_type = headers.get("content-type", "")
            now = utc_now()
            delivery = Delivery(
                headers=headers, body=body, url=str(request.url), content_type=content_type
            )
            verified = configured.scheme.verify(delivery, now)
            payload = parse_body(body, content_type)
            check_storable(payload)
            ExtractedEvent(
                idempotency_key=resolve_idempotency_key(
                    configured.key_spec, headers, payload, body, verified.header_key
                ),
                event_type=extract_event_type(
                    payload, configured.event_type_pointer, configured.event_type_header, headers
                ),
                subject=extract_subject(payload, configured.subject_pointer),
                occurred_at=extract_occurred_at(
                    payload, configured.occurred_at_pointer, verified.signed_at or now
                ),
            )
            body_sha256(body)
        except (HookledgerError, VerificationError) as exc:
            metrics.deliveries.labels(metric_source, exc.code).inc()
            metrics.latency.labels(metric_source).observe(time.perf_counter() - started)
            raise
        metrics.deliveries.labels(metric_source, "accepted").inc()
        metrics.latency.labels(metric_source).observe(time.perf_counter() - started)
        return Response(
            orjson.dumps({"status": "accepted", "event_id": next(event_ids)}),
            media_type="application/json",
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the no-database echo twin of the hook route.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The same server options as `hookledger serve`.
    uvicorn.run(
        "echo_app:create_echo_app",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
