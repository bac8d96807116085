"""Window resolution: defaults, alignment, settling and length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.reconciliation.errors import InvalidWindowError
from app.reconciliation.windows import Window, floor_to, last_closed_window, recent_windows, resolve_window

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
NOW = datetime(2026, 12, 2, 0, 30, tzinfo=UTC)


def test_last_closed_window_respects_settle_lag():
    """At 00:30 with a 1h lag the previous day is not settled yet, so the day before is the newest."""
    assert last_closed_window(NOW, DAY, HOUR) == Window(datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert last_closed_window(NOW + HOUR, DAY, HOUR) == Window(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))


def test_hourly_windows():
    assert last_closed_window(NOW, HOUR, HOUR) == Window(
        datetime(2026, 12, 1, 22, tzinfo=UTC), datetime(2026, 12, 1, 23, tzinfo=UTC)
    )


def test_recent_windows_oldest_first():
    windows = recent_windows(NOW, DAY, HOUR, 3)
    assert [window.start.day for window in windows] == [28, 29, 30]
    assert all(window.end - window.start == DAY for window in windows)


def test_floor_to_other_offsets_is_utc():
    moment = datetime(2026, 12, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert floor_to(moment, DAY) == datetime(2026, 11, 30, tzinfo=UTC)


def test_one_bound_gives_one_window():
    start = datetime(2026, 11, 29, tzinfo=UTC)
    assert resolve_window(start, None, now=NOW, size=DAY, settle_lag=HOUR) == Window(start, start + DAY)
    assert resolve_window(None, start, now=NOW, size=DAY, settle_lag=HOUR) == Window(start - DAY, start)


def test_offset_bounds_are_converted_to_utc():
    start = datetime(2026, 11, 29, 2, tzinfo=timezone(timedelta(hours=2)))
    window = resolve_window(start, None, now=NOW, size=DAY, settle_lag=HOUR)
    assert window.start == datetime(2026, 11, 29, tzinfo=UTC)
    assert window.start.tzinfo == UTC


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (datetime(2026, 11, 29, 1, tzinfo=UTC), None, "not aligned"),
        (datetime(2026, 12, 1, tzinfo=UTC), None, "not settled"),
        (datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC), "spans 2 windows"),
        (datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC), "not before end"),
        (datetime(2026, 11, 29), None, "no time zone"),
    ],
    ids=["unaligned", "unsettled", "too-long", "reversed", "naive"],
)
def test_invalid_windows(start, end, fragment):
    with pytest.raises(InvalidWindowError) as raised:
        resolve_window(start, end, now=NOW, size=DAY, settle_lag=HOUR)
    assert fragment in raised.value.detail
