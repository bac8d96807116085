"""Read the demo's SQLite ledger directly, to compare it with the generator's truth.

The metric API returns the totals that users read. The truth check needs every
subject of every day, so it reads the `events` table itself, read-only.
SQLite stores `occurred_at` as naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff`,
so its first ten characters are the UTC day.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class LedgerSnapshot:
    """Counts of one source's ledger rows, and a digest of every row's identity."""

    by_subject_day: dict[tuple[str, date], int]
    by_subject_day_kind: dict[tuple[str, date, str], int]
    by_origin_kind: dict[tuple[str, str], int]
    rows: int
    digest: str


@contextmanager
def _connect(database: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def read_snapshot(database: Path, source: str, event_types: tuple[str, ...]) -> LedgerSnapshot:
    """Count `source`'s rows of `event_types` per subject, day, kind and origin."""
    placeholders = ", ".join("?" for _ in event_types)
    where = f"source = ? AND event_type IN ({placeholders})"
    parameters = (source, *event_types)
    with _connect(database) as connection:
        per_day_kind = connection.execute(
            f"SELECT COALESCE(subject, ''), substr(occurred_at, 1, 10), event_type, count(*) "
            f"FROM events WHERE {where} GROUP BY 1, 2, 3",
            parameters,
        ).fetchall()
        per_origin = connection.execute(
            f"SELECT origin, event_type, count(*) FROM events WHERE {where} GROUP BY 1, 2", parameters
        ).fetchall()
        identities = connection.execute(
            f"SELECT idempotency_key, origin, COALESCE(reconciliation_run_id, 0), occurred_at "
            f"FROM events WHERE {where} ORDER BY idempotency_key",
            parameters,
        ).fetchall()

    by_subject_day: dict[tuple[str, date], int] = {}
    by_subject_day_kind: dict[tuple[str, date, str], int] = {}
    for subject, day_text, kind, count in per_day_kind:
        day = date.fromisoformat(day_text)
        by_subject_day[(subject, day)] = by_subject_day.get((subject, day), 0) + count
        by_subject_day_kind[(subject, day, kind)] = count
    digest = hashlib.sha256()
    for identity in identities:
        digest.update(repr(identity).encode())
    return LedgerSnapshot(
        by_subject_day=by_subject_day,
        by_subject_day_kind=by_subject_day_kind,
        by_origin_kind={(origin, kind): count for origin, kind, count in per_origin},
        rows=len(identities),
        digest=digest.hexdigest(),
    )
