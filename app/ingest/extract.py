"""Extract the ledger fields of an event from a verified delivery."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import BadRequestError, UnprocessableError
from app.ingest.pointer import MISSING, resolve_pointer
from app.ingest.schemes.base import KeySpec, body_sha256

MAX_KEY_LENGTH = 255
MAX_FIELD_LENGTH = 255
# Unix timestamps above this many seconds (year 5138) are read as milliseconds.
MILLISECONDS_THRESHOLD = 1e11
# Accepted event times: from the Unix epoch to one day of clock skew past the delivery.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE_SKEW = timedelta(days=1)
# Deepest JSON nesting stored; orjson serializes at most 254 levels.
MAX_PAYLOAD_DEPTH = 64


@dataclass(frozen=True)
class ExtractedEvent:
    idempotency_key: str
    event_type: str
    subject: str | None
    occurred_at: datetime


def resolve_idempotency_key(
    spec: KeySpec, headers: Mapping[str, str], payload: Any, body: bytes, header_key: str | None
) -> str:
    """Return the delivery's idempotency key from headers, body pointers, the scheme, or the body hash."""
    for name in spec.headers:
        value = headers.get(name)
        if value:
            return _check_key(value.strip(), f"header {name}")
    for pointer in spec.pointers:
        value = resolve_pointer(payload, pointer, None)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return _check_key(str(value), f"body field {pointer}")
        if value is not None and value != "":
            raise UnprocessableError(
                f"The idempotency key at body field {pointer} must be a string or an integer, "
                f"not {_describe(value)}; send the sender's event id there.",
                code="invalid_event",
                pointer=pointer,
            )
    if header_key:
        return _check_key(header_key, "the signature headers")
    if spec.body_hash_fallback:
        return "sha256:" + body_sha256(body)
    places = [f"header {name}" for name in spec.headers] + [f"body field {pointer}" for pointer in spec.pointers]
    raise BadRequestError(
        f"The delivery has no idempotency key: {' and '.join(places) or 'no key location is configured'} "
        "missing; send the sender's event id there or configure idempotency_key_header or idempotency_key_pointer.",
        code="missing_idempotency_key",
    )


def _check_key(value: str, where: str) -> str:
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable():
        raise UnprocessableError(
            f"The idempotency key from {where} is invalid: it must be 1-{MAX_KEY_LENGTH} printable characters.",
            code="invalid_event",
        )
    return value


def extract_event_type(
    payload: Any, pointer: str | Sequence[str] | None, header_name: str | None, headers: Mapping[str, str]
) -> str:
    """Return the event type from a header (with an optional pointer suffix) or body pointers.

    `pointer` may be one JSON pointer or several; the first one present in the
    body wins, so one source can accept several kinds of bodies.
    """
    pointers = (pointer,) if isinstance(pointer, str) else tuple(pointer or ())
    from_header = headers.get(header_name, "").strip() if header_name else ""
    from_body: Any = MISSING
    found_at = pointers[0] if pointers else None
    for candidate in pointers:
        from_body = resolve_pointer(payload, candidate, MISSING)
        if from_body is not MISSING and from_body is not None:
            found_at = candidate
            break
    if header_name:
        if not from_header:
            raise BadRequestError(
                f"Header {header_name} is missing; the event type of this source comes from it.",
                code="missing_header",
                header=header_name,
            )
        event_type = f"{from_header}.{from_body}" if isinstance(from_body, str) and from_body else from_header
    else:
        places = " or ".join(pointers) or "no configured pointer"
        if from_body is MISSING or from_body is None:
            raise UnprocessableError(
                f"The event has no event type at {places}; send it there or set event_type_pointer for the source.",
                code="invalid_event",
                pointer=found_at,
            )
        if not isinstance(from_body, str) or not from_body:
            raise UnprocessableError(
                f"The event type at {found_at} must be a non-empty string, not {_describe(from_body)}.",
                code="invalid_event",
                pointer=found_at,
            )
        event_type = from_body
    if len(event_type) > MAX_FIELD_LENGTH:
        raise UnprocessableError(
            f"The event type is {len(event_type)} characters long; the maximum is {MAX_FIELD_LENGTH}.",
            code="invalid_event",
        )
    return event_type


def extract_subject(payload: Any, pointer: str | None) -> str | None:
    """Return the subject (usually a user id) at `pointer`, or None when absent."""
    if not pointer:
        return None
    value = resolve_pointer(payload, pointer, None)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnprocessableError(
            f"The subject at {pointer} must be a string or an integer, not {_describe(value)}.",
            code="invalid_event",
            pointer=pointer,
        )
    text = str(value)
    if len(text) > MAX_FIELD_LENGTH:
        raise UnprocessableError(
            f"The subject at {pointer} is {len(text)} characters long; the maximum is {MAX_FIELD_LENGTH}.",
            code="invalid_event",
            pointer=pointer,
        )
    return text


def extract_occurred_at(payload: Any, pointer: str | None, fallback: datetime) -> datetime:
    """Return the event's own time from `pointer` (ISO 8601 or Unix seconds), else `fallback`."""
    if not pointer:
        return fallback
    value = resolve_pointer(payload, pointer, None)
    if value is None:
        return fallback
    parsed = parse_timestamp(value)
    if parsed is None:
        raise UnprocessableError(
            f"The event time at {pointer} is invalid: {_describe(value)} is neither an ISO 8601 date-time "
            "with a UTC offset nor Unix seconds.",
            code="invalid_event",
            pointer=pointer,
        )
    check_plausible_time(parsed, fallback, where=f"at {pointer}")
    return parsed


def check_plausible_time(value: datetime, received_at: datetime, *, where: str) -> None:
    """Reject event times before 1970 or more than a day after the event was received.

    Such values come from a wrong unit (milliseconds read as seconds) or a
    broken sender clock, and counting them would put events in the wrong buckets.
    """
    if value < EARLIEST_EVENT_TIME or value > received_at + MAX_FUTURE_SKEW:
        raise UnprocessableError(
            f"The event time {where} is {value.isoformat()}, which is implausible: it must be between "
            f"{EARLIEST_EVENT_TIME.date().isoformat()} and one day after the time it was received "
            f"({received_at.isoformat()}). Check the sender's clock and that the time is in seconds, not milliseconds.",
            code="invalid_event",
        )


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO 8601 string with an offset, or Unix seconds or milliseconds, to aware UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if abs(value) >= MILLISECONDS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and 0 < len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                return None
            # Offsets near year 1 or 9999 overflow the datetime range when converted.
            return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
    return None


def check_storable(value: Any, max_depth: int = MAX_PAYLOAD_DEPTH) -> None:
    """Reject payloads the database cannot store: NUL characters, lone surrogates, deep nesting.

    The walk is iterative, so a deeply nested payload cannot exhaust the
    Python stack before the depth check rejects it.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path or "/")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise UnprocessableError(
                f"The payload is nested more than {max_depth} levels deep (at {path[:200] or '/'}); "
                "flatten the event before sending it.",
                code="invalid_event",
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, f"{path}/{key}")
                stack.append((child, f"{path}/{key}", depth + 1))
        else:
            for index, child in enumerate(item):
                stack.append((child, f"{path}/{index}", depth + 1))


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise UnprocessableError(
            f"The payload contains a NUL character (\\u0000) at {where[:200]}, which cannot be stored; "
            "remove it from the event.",
            code="invalid_event",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnprocessableError(
            f"The payload contains an unpaired UTF-16 surrogate at {where[:200]}; send valid Unicode text.",
            code="invalid_event",
        ) from exc


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
