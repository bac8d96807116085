"""Reconciliation windows: half-open UTC ranges aligned to the window size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.reconciliation.errors import InvalidWindowError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Window:
    """The half-open UTC range `[start, end)`."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def floor_to(moment: datetime, size: timedelta) -> datetime:
    """Round an aware datetime down to a multiple of `size` since the Unix epoch."""
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // size) * size


def is_aligned(moment: datetime, size: timedelta) -> bool:
    return floor_to(moment, size) == moment


def last_closed_window(now: datetime, size: timedelta, settle_lag: timedelta) -> Window:
    """Return the newest window that ended at least `settle_lag` before `now`."""
    end = floor_to(now - settle_lag, size)
    return Window(end - size, end)


def recent_windows(now: datetime, size: timedelta, settle_lag: timedelta, count: int) -> list[Window]:
    """Return the `count` newest settled windows, oldest first."""
    newest = last_closed_window(now, size, settle_lag)
    return [Window(newest.start - size * offset, newest.end - size * offset) for offset in reversed(range(count))]


def resolve_window(
    start: datetime | None,
    end: datetime | None,
    *,
    now: datetime,
    size: timedelta,
    settle_lag: timedelta,
) -> Window:
    """Turn a requested start and/or end into one settled window; raise InvalidWindowError with the reason.

    With neither bound the window is the last settled one. With one bound the
    other is one window size away.
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InvalidWindowError(f"{name} {value.isoformat()} has no time zone; send it in UTC, e.g. with a Z suffix.")
    if start is None and end is None:
        return last_closed_window(now, size, settle_lag)
    if start is None:
        assert end is not None
        start = end - size
    if end is None:
        end = start + size
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    label = _size_label(size)

    if start >= end:
        raise InvalidWindowError(f"start {start.isoformat()} is not before end {end.isoformat()}; send start < end.")
    for name, value in (("start", start), ("end", end)):
        if not is_aligned(value, size):
            raise InvalidWindowError(
                f"{name} {value.isoformat()} is not aligned to the {label} window; "
                f"use {floor_to(value, size).isoformat()} or the next boundary."
            )
    if end - start > size:
        raise InvalidWindowError(
            f"The window {Window(start, end)} spans {(end - start) // size} windows of {label}; "
            "a run covers one window, so send one request per window."
        )
    settled_until = now - settle_lag
    if end > settled_until:
        raise InvalidWindowError(
            f"The window {Window(start, end)} is not settled yet: it must end at least {settle_lag} before now "
            f"({settled_until.isoformat()}); the newest settled window is {last_closed_window(now, size, settle_lag)}."
        )
    return Window(start, end)


def _size_label(size: timedelta) -> str:
    if size % timedelta(days=1) == timedelta(0):
        return f"{size // timedelta(days=1)}d"
    return f"{size // timedelta(hours=1)}h"
