"""Reconciliation windows: half-open UTC ranges aligned to the window size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.reconciliation.errors import InvalidWindowError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Earlier windows are rejected as typing mistakes. The bound also keeps window and partition
# arithmetic far from datetime's year-1 minimum, where it raises OverflowError.
EARLIEST_WINDOW_START = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Window:
    """The half-open UTC range `[start, end)`."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{_iso(self.start)}, {_iso(self.end)})"


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
    other is one window size away. Bounds must lie between EARLIEST_WINDOW_START
    and `now`; they are checked before any arithmetic, so no bound can overflow.
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise InvalidWindowError(f"{name} {value.isoformat()} has no time zone; send it in UTC, e.g. with a Z suffix.")
    if start is None and end is None:
        return last_closed_window(now, size, settle_lag)
    for name, value in (("start", start), ("end", end)):
        if value is not None:
            _check_in_range(name, value, now=now, size=size, settle_lag=settle_lag)
    if start is None:
        assert end is not None
        start = end - size
    if end is None:
        end = start + size
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    label = _duration_label(size)

    if start >= end:
        raise InvalidWindowError(f"start {_iso(start)} is not before end {_iso(end)}; send start < end.")
    if start < EARLIEST_WINDOW_START:
        raise InvalidWindowError(
            f"The window {Window(start, end)} starts before {_iso(EARLIEST_WINDOW_START)}; "
            f"reconciliation windows must lie between {_iso(EARLIEST_WINDOW_START)} and now ({_iso(now)})."
        )
    for name, value in (("start", start), ("end", end)):
        if not is_aligned(value, size):
            raise InvalidWindowError(
                f"{name} {_iso(value)} is not aligned to the {label} window; "
                f"use {_iso(floor_to(value, size))} or the next boundary."
            )
    if end - start > size:
        raise InvalidWindowError(
            f"The window {Window(start, end)} spans {(end - start) // size} windows of {label}; "
            "a run covers one window, so send one request per window."
        )
    if end > now - settle_lag:
        raise InvalidWindowError(_not_settled(Window(start, end), now=now, size=size, settle_lag=settle_lag))
    return Window(start, end)


def _check_in_range(name: str, value: datetime, *, now: datetime, size: timedelta, settle_lag: timedelta) -> None:
    """Reject a bound before EARLIEST_WINDOW_START or after `now`; comparing aware datetimes cannot overflow."""
    if value < EARLIEST_WINDOW_START:
        raise InvalidWindowError(
            f"{name} {value.isoformat()} is before {_iso(EARLIEST_WINDOW_START)}; reconciliation windows "
            f"must lie between {_iso(EARLIEST_WINDOW_START)} and now ({_iso(now)}), so send a later {name}."
        )
    if value > now:
        newest = last_closed_window(now, size, settle_lag)
        raise InvalidWindowError(
            f"{name} {value.isoformat()} is after now ({_iso(now)}); reconciliation windows must lie between "
            f"{_iso(EARLIEST_WINDOW_START)} and now, and end at least {_duration_label(settle_lag)} before now. "
            f"The newest settled window is {newest}."
        )


def _not_settled(window: Window, *, now: datetime, size: timedelta, settle_lag: timedelta) -> str:
    newest = last_closed_window(now, size, settle_lag)
    return (
        f"The window {window} is not settled yet: a window must end at least {_duration_label(settle_lag)} "
        f"before now. Now is {_iso(now)}, so the latest end allowed is {_iso(newest.end)}; "
        f"the newest settled window is {newest}."
    )


def _duration_label(duration: timedelta) -> str:
    """Write a duration as whole days, hours, minutes or seconds, e.g. 1d, 1h, 90m."""
    for unit, suffix in ((timedelta(days=1), "d"), (timedelta(hours=1), "h"), (timedelta(minutes=1), "m")):
        if duration >= unit and duration % unit == timedelta(0):
            return f"{duration // unit}{suffix}"
    return f"{int(duration.total_seconds())}s"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
