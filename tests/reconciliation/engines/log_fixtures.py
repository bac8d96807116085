"""Builders of log partitions for the log query engine tests.

`LogTree` writes gzip NDJSON EventBridge envelopes into `dt=YYYY-MM-DD/`
directories, shaped like the Auth0 and Stripe samples in `tests/data/`, and keeps
the truth about every record it wrote. `expected_auth0_rows` derives, from that
truth alone, what a window query must return.
"""

from __future__ import annotations

import copy
import gzip
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from app.reconciliation.engines.base import LogQuery
from app.reconciliation.mappings import LogMapping

DATA = Path(__file__).resolve().parents[2] / "data"
AUTH0_TYPES = {
    "s": "login",
    "ssa": "silent_login",
    "sertft": "refresh",
    "sepft": "password_grant",
    "ss": "signup",
}
TOKEN = "reconcile-auth0-2024-01-15-attempt-0001"


@dataclass(frozen=True)
class WrittenRecord:
    """One line written to a partition, as the test recorded it."""

    partition: date
    log_id: str
    log_type: str
    subject: str | None
    occurred_at: datetime
    session_id: str | None
    transaction_id: str | None
    client_id: str | None


class LogTree:
    """Writes envelopes into `<root>/dt=YYYY-MM-DD/*.gz` and records what it wrote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[WrittenRecord] = []
        self._auth0_sample = json.loads((DATA / "auth0" / "eventbridge-log-s.json").read_text())
        self._stripe_sample = json.loads(
            (DATA / "logs" / "stripe-eventbridge-invoice-paid.json").read_text()
        )
        self._file_counter = 0

    def auth0_envelope(
        self,
        log_id: str,
        log_type: str,
        date_text: str,
        *,
        user_id: str | None = "auth0|alice",
        session_id: str | None = "sess-1",
        transaction_id: str | None = None,
        client_id: str | None = "client-web",
    ) -> dict[str, Any]:
        """Return an EventBridge envelope built from the `s` sample with these fields."""
        envelope = copy.deepcopy(self._auth0_sample)
        envelope["id"] = f"eb-{log_id}-{len(self.written)}"
        data = envelope["detail"]["data"]
        envelope["detail"]["log_id"] = log_id
        data["log_id"] = log_id
        data["type"] = log_type
        data["date"] = date_text
        _set_or_drop(data, "user_id", user_id)
        _set_or_drop(data, "client_id", client_id)
        _set_or_drop(data["details"], "session_id", session_id)
        _set_or_drop(data["details"], "transaction_id", transaction_id)
        return envelope

    def stripe_envelope(
        self, event_id: str, event_type: str, created: datetime, customer: str | None
    ) -> dict[str, Any]:
        """Return an EventBridge envelope built from the Stripe sample."""
        envelope = copy.deepcopy(self._stripe_sample)
        envelope["detail"]["id"] = event_id
        envelope["detail"]["type"] = event_type
        envelope["detail-type"] = event_type
        envelope["detail"]["created"] = int(created.timestamp())
        envelope["detail"]["data"]["object"]["customer"] = customer
        return envelope

    def write(self, partition: str, envelopes: list[dict[str, Any]]) -> Path:
        """Write the envelopes as one gzip NDJSON file in the partition."""
        directory = self.root / f"dt={partition}"
        directory.mkdir(parents=True, exist_ok=True)
        self._file_counter += 1
        path = directory / f"hookledger-stream-1-{self._file_counter:04d}.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            for envelope in envelopes:
                handle.write(json.dumps(envelope) + "\n")
        for envelope in envelopes:
            self._remember(date.fromisoformat(partition), envelope)
        return path

    def write_corrupt(self, partition: str) -> Path:
        """Write a file that is not gzip at all, so reading it fails."""
        directory = self.root / f"dt={partition}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "corrupt.gz"
        path.write_bytes(b"this is not gzip data\n")
        return path

    def _remember(self, partition: date, envelope: dict[str, Any]) -> None:
        data = envelope["detail"].get("data", {})
        if "type" not in data or not isinstance(data.get("date"), str):
            return
        self.written.append(
            WrittenRecord(
                partition=partition,
                log_id=envelope["detail"]["log_id"],
                log_type=data["type"],
                subject=data.get("user_id"),
                occurred_at=datetime.fromisoformat(data["date"]).astimezone(UTC),
                session_id=data["details"].get("session_id"),
                transaction_id=data["details"].get("transaction_id"),
                client_id=data.get("client_id"),
            )
        )


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def expected_auth0_rows(tree: LogTree, query: LogQuery) -> list[tuple[Any, ...]]:
    """Compute the rows a query must return from what the tree wrote.

    Keeps records in scanned partitions, of mapped types, inside the window; one per
    log_id; ordered by subject (missing first), occurred_at, log_id.
    """
    scanned = set(query.partition_dates())
    kept: dict[str, WrittenRecord] = {}
    for record in tree.written:
        if record.partition not in scanned or record.log_type not in AUTH0_TYPES:
            continue
        if not query.start <= record.occurred_at < query.end:
            continue
        kept.setdefault(record.log_id, record)
    rows = [
        (
            record.log_id,
            AUTH0_TYPES[record.log_type],
            record.subject,
            record.occurred_at,
            record.session_id,
            record.transaction_id,
            record.client_id,
        )
        for record in kept.values()
    ]
    return sorted(rows, key=lambda row: (row[2] is not None, row[2] or "", row[3], row[0]))


def record_rows(records: list[Any]) -> list[tuple[Any, ...]]:
    """Project LogRecords onto the tuple shape of `expected_auth0_rows`."""
    return [
        (
            record.log_id,
            record.event_type,
            record.subject,
            record.occurred_at,
            record.session_id,
            record.transaction_id,
            record.client_id,
        )
        for record in records
    ]



def build_auth0_window(tree: LogTree) -> LogTree:
    """Partitions around the window [2024-01-15, 2024-01-16) with every awkward case.

    - dt=2024-01-13 and dt=2024-01-18 contain only corrupt files (outside the scanned range).
    - dt=2024-01-14 contains a Firehose object opened just before midnight: one record from
      the day before the window (excluded) and one from just after the window starts.
    - dt=2024-01-15 contains logins of several types, a duplicate in the same file and in
      another file, excluded types (f, slo), a record without user_id, the exact window
      start, and a record whose offset puts it before the window in UTC.
    - dt=2024-01-16 contains late arrivals from the window, a re-delivered duplicate, and a
      record at the exact window end (excluded).
    - dt=2024-01-17 contains a record from the window that arrived after the lag margin.
    """
    tree.write_corrupt("2024-01-13")
    tree.write(
        "2024-01-14",
        [
            tree.auth0_envelope("900015", "s", "2024-01-14T23:59:50.000Z", user_id="auth0|gina"),
            tree.auth0_envelope("900016", "s", "2024-01-15T00:00:20.000Z", user_id="auth0|gina"),
        ],
    )
    alice_login = tree.auth0_envelope(
        "900001", "s", "2024-01-15T10:30:06.123Z", transaction_id="tx-1"
    )
    tree.write(
        "2024-01-15",
        [
            alice_login,
            alice_login,
            tree.auth0_envelope("900002", "ssa", "2024-01-15T11:00:00.000Z"),
            tree.auth0_envelope(
                "900003", "sertft", "2024-01-15T12:00:00.000Z", user_id="auth0|bob",
                session_id=None,
            ),
            tree.auth0_envelope(
                "900004", "sepft", "2024-01-15T13:00:00.000Z", user_id="auth0|carol",
                session_id=None, client_id=None,
            ),
            tree.auth0_envelope("900005", "ss", "2024-01-15T14:00:00.000Z", user_id="auth0|dave"),
            tree.auth0_envelope("900006", "f", "2024-01-15T15:00:00.000Z"),
            tree.auth0_envelope("900007", "slo", "2024-01-15T15:30:00.000Z"),
            tree.auth0_envelope("900008", "s", "2024-01-15T16:00:00.000Z", user_id=None),
            tree.auth0_envelope("900009", "s", "2024-01-15T00:00:00.000Z", user_id="auth0|bob"),
            tree.auth0_envelope("900010", "s", "2024-01-15T01:30:00.000+02:00"),
        ],
    )
    tree.write("2024-01-15", [alice_login])
    tree.write(
        "2024-01-16",
        [
            tree.auth0_envelope("900011", "s", "2024-01-15T23:58:00.000Z", user_id="auth0|erin"),
            alice_login,
            tree.auth0_envelope("900012", "s", "2024-01-16T00:00:00.000Z", user_id="auth0|erin"),
            tree.auth0_envelope("900013", "s", "2024-01-16T03:00:00.000Z", user_id="auth0|erin"),
        ],
    )
    tree.write(
        "2024-01-17",
        [tree.auth0_envelope("900014", "s", "2024-01-15T20:00:00.000Z", user_id="auth0|frank")],
    )
    tree.write_corrupt("2024-01-18")
    return tree


def window_query(mapping: LogMapping, *, lag_hours: int = 6) -> LogQuery:
    """Return the query over [2024-01-15, 2024-01-16) with the given lag margin."""
    return LogQuery(
        mapping=mapping,
        start=datetime(2024, 1, 15, tzinfo=UTC),
        end=datetime(2024, 1, 16, tzinfo=UTC),
        lag_margin=timedelta(hours=lag_hours),
        request_token=TOKEN,
    )
