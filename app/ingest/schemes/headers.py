"""Reading signature headers and signed timestamps without trusting their shape.

Every helper raises `VerificationError` with a stable code, never a bare
`ValueError`, so that malformed input ends as a 400 or 401 and never as a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from app.ingest.schemes.base import VerificationError
from app.ingest.schemes.trace import Trace

# Maximum length of a header value that a verifier reads. A Standard Webhooks
# header with ten rotated v1 and v1a entries is about 1,400 characters.
MAX_HEADER_CHARS = 4096

# Unix seconds stay below 13 digits until the year 33658; a longer value cannot
# be inside any tolerance, and int() on thousands of digits is slow.
MAX_TIMESTAMP_DIGITS = 12

DIGITS = re.compile(r"[0-9]+")


def show(value: str, limit: int = 40) -> str:
    """Return `value` quoted and shortened for an error message."""
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)


def require_header(headers: Mapping[str, str], name: str, *, hint: str) -> str:
    """Return the value of header `name`, or raise `missing_header` / `malformed_header`.

    `hint` finishes the missing-header sentence with what the caller should do.
    """
    value = headers.get(name)
    if value is None:
        raise VerificationError(
            "missing_header", f"Header {name} is missing; {hint}", status=400, header=name
        )
    value = value.strip()
    if not value:
        raise VerificationError(
            "malformed_header", f"Header {name} is empty; {hint}", status=400, header=name
        )
    if len(value) > MAX_HEADER_CHARS:
        raise VerificationError(
            "malformed_header",
            f"Header {name} is {len(value)} characters long, more than the {MAX_HEADER_CHARS} "
            "a signature header can need; send the header the sender produced, unchanged.",
            status=400,
            header=name,
        )
    return value


def parse_timestamp(name: str, value: str) -> int:
    """Parse a signed timestamp in whole Unix seconds; only ASCII digits are accepted.

    Floats, signs and white space inside are rejected because the signed text
    must be exactly what the header carries.
    """
    if not DIGITS.fullmatch(value):
        raise VerificationError(
            "malformed_header",
            f"Header {name} value {show(value)} is not a whole number of Unix seconds; "
            "send the timestamp the sender signed, unchanged.",
            status=400,
            header=name,
        )
    if len(value) > MAX_TIMESTAMP_DIGITS:
        raise VerificationError(
            "timestamp_out_of_tolerance",
            f"Header {name} value {show(value)} is not a plausible Unix time; "
            "send the timestamp the sender signed, unchanged.",
            header=name,
        )
    return int(value)


def tolerance_problem(name: str, timestamp: int, now: datetime, tolerance: int) -> str | None:
    """Return why `timestamp` is outside `tolerance` seconds of `now`, or None when inside.

    The check is symmetric: a timestamp too far in the future fails like an old one.
    """
    skew = int(now.timestamp()) - timestamp
    if abs(skew) <= tolerance:
        return None
    direction = "older than" if skew > 0 else "ahead of"
    return (
        f"timestamp {timestamp} in header {name} is {abs(skew)} s {direction} the server clock, "
        f"more than the {tolerance} s tolerance"
    )


def check_tolerance(name: str, timestamp: int, now: datetime, tolerance: int) -> datetime:
    """Return `timestamp` as an aware UTC datetime, or raise `timestamp_out_of_tolerance`."""
    problem = tolerance_problem(name, timestamp, now, tolerance)
    if problem is not None:
        raise VerificationError(
            "timestamp_out_of_tolerance",
            f"The {problem}; check the server clock, or have the sender retry the delivery "
            "so that it carries a fresh signed timestamp.",
            header=name,
        )
    return datetime.fromtimestamp(timestamp, UTC)


def note_tolerance(name: str, timestamp: int, now: datetime, tolerance: int, trace: Trace) -> None:
    """Record the timestamp check; raise at once unless the trace wants the signature result too.

    Callers still call `check_tolerance` after comparing signatures, so a stale
    timestamp always ends as `timestamp_out_of_tolerance`.
    """
    problem = tolerance_problem(name, timestamp, now, tolerance)
    if problem is None:
        trace.note(f"{name} {timestamp} is within the {tolerance} s tolerance")
        return
    trace.note(problem)
    if not trace.enabled:
        check_tolerance(name, timestamp, now, tolerance)
