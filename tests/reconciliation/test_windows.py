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


PLUS_2359 = timezone(timedelta(hours=23, minutes=59))
MINUS_2359 = timezone(-timedelta(hours=23, minutes=59))


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), None, "start 0001-01-01T00:00:00+00:00 is before 2000-01-01T00:00:00Z"),
        (None, datetime(1, 1, 2, tzinfo=UTC), "end 0001-01-02T00:00:00+00:00 is before 2000-01-01T00:00:00Z"),
        (datetime(1, 1, 1, tzinfo=PLUS_2359), None, "is before 2000-01-01T00:00:00Z"),
        (datetime(9999, 12, 31, tzinfo=UTC), None, "is after now (2026-12-02T00:30:00Z)"),
        (None, datetime(9999, 12, 31, 23, 59, tzinfo=MINUS_2359), "is after now"),
        (datetime(1999, 12, 31, tzinfo=UTC), None, "is before 2000-01-01T00:00:00Z"),
        # The start computed from this end is 1999-12-31, before the earliest start.
        (None, datetime(2000, 1, 1, tzinfo=UTC), "starts before 2000-01-01T00:00:00Z"),
    ],
    ids=["year-1", "year-1-end", "year-1-offset", "year-9999", "year-9999-offset", "1999", "computed-start-1999"],
)
def test_windows_outside_range(start, end, fragment):
    with pytest.raises(InvalidWindowError) as raised:
        resolve_window(start, end, now=NOW, size=DAY, settle_lag=HOUR)
    assert fragment in raised.value.detail
    assert "between 2000-01-01T00:00:00Z and now" in raised.value.detail


def test_earliest_window_is_allowed():
    start = datetime(2000, 1, 1, tzinfo=UTC)
    assert resolve_window(start, None, now=NOW, size=DAY, settle_lag=HOUR) == Window(start, start + DAY)


def test_unsettled_detail_shows_now_and_latest_end():
    now = datetime(2026, 12, 4, 20, 57, 39, tzinfo=UTC)
    with pytest.raises(InvalidWindowError) as raised:
        resolve_window(datetime(2026, 12, 4, 19, tzinfo=UTC), None, now=now, size=HOUR, settle_lag=HOUR)
    detail = raised.value.detail
    assert "at least 1h before now" in detail
    assert "Now is 2026-12-04T20:57:39Z" in detail
    assert "latest end allowed is 2026-12-04T19:00:00Z" in detail
    assert "newest settled window is [2026-12-04T18:00:00Z, 2026-12-04T19:00:00Z)" in detail


@pytest.mark.parametrize(
    ("settle_lag", "label"),
    [(timedelta(days=2), "2d"), (timedelta(minutes=90), "90m"), (timedelta(seconds=45), "45s")],
)
def test_unsettled_detail_writes_lag_in_units(settle_lag, label):
    with pytest.raises(InvalidWindowError) as raised:
        resolve_window(datetime(2026, 12, 2, tzinfo=UTC), None, now=NOW, size=DAY, settle_lag=settle_lag)
    assert f"at least {label} before now" in raised.value.detail
