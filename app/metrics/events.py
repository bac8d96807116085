"""Direct metric events: validate each item, then store it through the ledger's exactly-once rules.

An invalid item is reported and never stored; the other items of the batch are
still stored. Each item's body hash is the SHA-256 of the canonical JSON of its
normalized fields (sorted keys, no whitespace, `occurred_at` in UTC), so a
replay that writes the time with another offset is still a duplicate.

All items are written in the request's one transaction. An idempotency conflict raises
no database error (the insert did nothing), so it is classified without a
savepoint and cannot roll back the other items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Origin
from app.errors import HookledgerError
from app.ingest.extract import (
    EARLIEST_EVENT_TIME,
    ExtractedEvent,
    check_plausible_time,
    check_storable,
    parse_timestamp,
)
from app.ingest.service import IdempotencyConflictError, store_event

log = structlog.get_logger("app.metrics")

ItemStatus = Literal["accepted", "duplicate", "conflict", "invalid"]


class MetricEventIn(BaseModel):
    """One event as a trusted caller sends it."""

    model_config = ConfigDict(extra="forbid")

    source: StrictStr
    idempotency_key: StrictStr = Field(min_length=1, max_length=255)
    event_type: StrictStr = Field(min_length=1, max_length=255)
    subject: StrictStr | None = Field(default=None, max_length=255)
    occurred_at: StrictStr
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("idempotency_key")
    @classmethod
    def _printable_key(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must contain printable characters only")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _timestamp_with_offset(cls, value: str) -> str:
        if parse_timestamp(value) is not None:
            return value
        if _has_offset(value):
            # Parsed, but converting it to UTC left datetime's range (e.g. year 1 with offset +23:59).
            raise ValueError(
                f"{value[:64]!r} is out of range; send a time between {EARLIEST_EVENT_TIME:%Y-%m-%dT%H:%M:%SZ} "
                "and one day after the request"
            )
        raise ValueError("must be an ISO 8601 date-time with a UTC offset or Z, e.g. 2026-12-01T10:00:00Z")


def _has_offset(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


@dataclass(frozen=True)
class ItemResult:
    index: int
    status: ItemStatus
    event_id: int | None = None
    code: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.event_id is not None:
            result["event_id"] = self.event_id
        if self.code is not None:
            result["code"] = self.code
        if self.detail is not None:
            result["detail"] = self.detail
        return result


def split_batch(document: Any) -> list[Any]:
    """Return the items of `{"events": [...]}`, or the document itself as a one-item batch."""
    if isinstance(document, dict) and set(document) == {"events"}:
        events = document["events"]
        return events if isinstance(events, list) else [events]
    return [document]


async def store_metric_events(
    session: AsyncSession,
    items: Sequence[Any],
    *,
    allowed_sources: Collection[str],
    received_at: datetime,
) -> list[ItemResult]:
    """Validate and store each item in order; return one result per item."""
    results = []
    for index, item in enumerate(items):
        try:
            event = _validate(item, allowed_sources, received_at)
        except _InvalidItem as exc:
            results.append(ItemResult(index, "invalid", code=exc.code, detail=exc.detail))
            continue
        results.append(await _store(session, index, event, received_at))
    return results


class _InvalidItem(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _validate(item: Any, allowed_sources: Collection[str], received_at: datetime) -> MetricEventIn:
    if not isinstance(item, dict):
        raise _InvalidItem("invalid_event", "The item is not a JSON object; send an object with the event fields.")
    # The depth, NUL and surrogate checks run first, because orjson.dumps (used for the
    # body hash) fails on objects nested more than 254 levels deep.
    try:
        check_storable(item)
    except HookledgerError as exc:
        raise _InvalidItem(exc.code, exc.detail) from exc
    try:
        event = MetricEventIn.model_validate(item)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'item'}: {error['msg']}" for error in exc.errors()
        )
        raise _InvalidItem("invalid_event", f"The event is invalid: {problems}.") from exc
    if event.source not in allowed_sources:
        raise _InvalidItem(
            "unknown_source",
            f"Source {event.source[:64]!r} does not accept metric events; use a configured source "
            "or add it to [metrics_api] sources.",
        )
    occurred_at = parse_timestamp(event.occurred_at)
    assert occurred_at is not None  # checked by the model's validator
    try:
        check_plausible_time(occurred_at, received_at, where="in occurred_at")
    except HookledgerError as exc:
        raise _InvalidItem(exc.code, exc.detail) from exc
    return event


async def _store(session: AsyncSession, index: int, event: MetricEventIn, received_at: datetime) -> ItemResult:
    occurred_at = parse_timestamp(event.occurred_at)
    assert occurred_at is not None  # checked by the model's validator
    normalized = {
        "source": event.source,
        "idempotency_key": event.idempotency_key,
        "event_type": event.event_type,
        "subject": event.subject,
        "occurred_at": occurred_at.isoformat(),
        "payload": event.payload,
    }
    body_hash = hashlib.sha256(orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS)).hexdigest()
    extracted = ExtractedEvent(
        idempotency_key=event.idempotency_key,
        event_type=event.event_type,
        subject=event.subject or None,
        occurred_at=occurred_at,
    )
    try:
        result = await store_event(
            session,
            source=event.source,
            event=extracted,
            payload=event.payload,
            body_hash=body_hash,
            origin=Origin.API,
            received_at=received_at,
        )
    except IdempotencyConflictError as exc:
        return ItemResult(index, "conflict", event_id=exc.extra.get("event_id"), code=exc.code, detail=exc.detail)
    return ItemResult(index, result.status, event_id=result.event_id)
