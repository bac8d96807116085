"""Store one verified event exactly once.

The dedupe rule: `UNIQUE (source, idempotency_key)` with `INSERT ... ON
CONFLICT DO NOTHING`. A key that already exists with the same body hash is a
duplicate; a different body hash from a push or an API call is an idempotency
conflict; a key that reconciliation inserted is a duplicate whatever the body,
because the log's copy of an event never has the push's exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Origin
from app.errors import ConflictError, StorageUnavailableError
from app.ingest.extract import ExtractedEvent
from app.ingest.repository import EventRepository

log = structlog.get_logger("app.ingest")


@dataclass(frozen=True)
class IngestResult:
    status: Literal["accepted", "duplicate"]
    event_id: int


class IdempotencyConflictError(ConflictError):
    code = "idempotency_conflict"


async def store_event(
    session: AsyncSession,
    *,
    source: str,
    event: ExtractedEvent,
    payload: Any,
    body_hash: str,
    origin: str,
    received_at: datetime,
) -> IngestResult:
    """Insert the event unless its key exists; classify an existing key as duplicate or conflict."""
    repository = EventRepository(session)
    event_id = await repository.insert_if_absent(
        {
            "source": source,
            "idempotency_key": event.idempotency_key,
            "event_type": event.event_type,
            "subject": event.subject,
            "occurred_at": event.occurred_at,
            "received_at": received_at,
            "origin": origin,
            "payload": payload,
            "body_sha256": body_hash,
        }
    )
    if event_id is not None:
        log_stored(source, event, event_id, origin)
        return IngestResult("accepted", event_id)

    existing = await repository.get_by_key(source, event.idempotency_key)
    if existing is None:
        # A reconciliation run retracted the conflicting row between the insert
        # and the lookup; a retry of the delivery inserts it.
        raise StorageUnavailableError(
            f"Event {event.idempotency_key!r} of source {source!r} changed while it was being stored; retry the delivery.",
            code="concurrent_update",
        )
    return classify_existing(source, event.idempotency_key, existing.id, existing.body_sha256, existing.origin, body_hash)


def log_stored(source: str, event: ExtractedEvent, event_id: int, origin: str) -> None:
    """Log one newly stored event."""
    log.info(
        "ingest.event_stored",
        source=source,
        idempotency_key=event.idempotency_key,
        event_type=event.event_type,
        event_id=event_id,
        origin=origin,
    )


def classify_existing(
    source: str, key: str, event_id: int, stored_hash: str, stored_origin: str, body_hash: str
) -> IngestResult:
    """Return duplicate for a replay, or raise the idempotency conflict for a changed body."""
    if stored_hash == body_hash or stored_origin == Origin.RECONCILIATION:
        log.info("ingest.duplicate", source=source, idempotency_key=key, event_id=event_id)
        return IngestResult("duplicate", event_id)
    log.warning(
        "ingest.idempotency_conflict",
        source=source,
        idempotency_key=key,
        event_id=event_id,
        stored_body_sha256=stored_hash,
        body_sha256=body_hash,
    )
    raise IdempotencyConflictError(
        f"Event {key!r} of source {source!r} was already stored with a different body "
        f"(stored body SHA-256 {stored_hash[:12]}..., this one {body_hash[:12]}...); "
        "send a new idempotency key for a new event, or resend the original body.",
        event_id=event_id,
    )
