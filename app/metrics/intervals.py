"""Bucket intervals: hour, day, ISO week (Monday 00:00 UTC) and calendar month, all in UTC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def align_down(moment: datetime, interval: Interval) -> datetime:
    """Return the start of the bucket that contains `moment` (an aware datetime)."""
    moment = moment.astimezone(UTC)
    if interval is Interval.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval is Interval.DAY:
        return day
    if interval is Interval.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(start: datetime, interval: Interval) -> datetime:
    """Return the start of the bucket after the one that starts at `start`."""
    if interval is Interval.HOUR:
        return start + timedelta(hours=1)
    if interval is Interval.DAY:
        return start + timedelta(days=1)
    if interval is Interval.WEEK:
        return start + timedelta(weeks=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def is_aligned(moment: datetime, interval: Interval) -> bool:
    return align_down(moment, interval) == moment


def bucket_starts(start: datetime, end: datetime, interval: Interval, limit: int) -> list[datetime] | None:
    """Return the bucket starts of [start, end), or None when there would be more than `limit`."""
    starts: list[datetime] = []
    for bucket in _iterate(start, end, interval):
        if len(starts) == limit:
            return None
        starts.append(bucket)
    return starts


def _iterate(start: datetime, end: datetime, interval: Interval) -> Iterator[datetime]:
    bucket = start
    while bucket < end:
        yield bucket
        bucket = next_bucket(bucket, interval)
