"""Reconciliation of simulated Auth0 days with the DuckDB engine over Firehose-shaped files.

The traffic generator returns, per user and day, what the ledger must count
once every lost push is filled from the logs. These tests push what reached
the service, write the log stream to disk as Firehose would, reconcile, and
compare the ledger with that truth.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.db.engine import Database
from app.db.models import Origin
from app.demo.action import build_login_event, derive_webhook_id
from app.demo.firehose import write_log_stream
from app.demo.traffic import Login, Traffic, generate_day
from app.reconciliation.engines.duckdb import DuckDBEngine
from app.reconciliation.service import Reconciler
from tests.reconciliation.support import add_push, ledger_rows, reconciliation_config
from tests.support.app import FakeClock

SIM_DAY = date(2026, 11, 20)
DAY_START = datetime(2026, 11, 20, tzinfo=UTC)
NEXT_START = DAY_START + timedelta(days=1)


def push_key(login: Login) -> str:
    """Return the `webhook-id` the Action derives, with random bytes fixed per login for repeatability."""
    material = f"{login.user_id}|{login.occurred_at.isoformat()}|{login.kind}".encode()
    return derive_webhook_id(login.event, random_bytes=lambda size: hashlib.sha256(material).digest()[:size])


async def push_login(database: Database, login: Login) -> None:
    body = build_login_event(login.event, now=login.occurred_at)
    data = body["data"]
    await add_push(
        database,
        push_key(login),
        data["user_id"],
        datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")),
        kind=body["type"],
        transaction_id=data["transaction_id"],
        session_id=data["session_id"],
        client_id=data["client_id"],
    )


async def ledger_counts(database: Database) -> dict[tuple[str, date], int]:
    counts: Counter[tuple[str, date]] = Counter()
    for row in await ledger_rows(database):
        counts[(row.subject, row.occurred_at.date())] += 1
    return dict(counts)


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return generate_day(SIM_DAY, users=60, seed=9, loss=0.2, duplicate_rate=0.05, mfa_abandon_rate=0.6)


@pytest.fixture
def log_root(tmp_path: Path, traffic: Traffic) -> Path:
    root = tmp_path / "auth0-logs"
    write_log_stream(traffic.log_records, root, duplicate_ids=traffic.duplicates, records_per_file=200, seed=3)
    return root


@pytest.fixture
def day_reconciler(database: Database, log_root: Path) -> Reconciler:
    clock = FakeClock(NEXT_START + timedelta(days=1, hours=3))
    config = reconciliation_config(log_root)
    return Reconciler(database, config, engine_factory=lambda settings: DuckDBEngine(), clock=clock)


async def reconcile_both_days(reconciler: Reconciler) -> list:
    runs = []
    for start in (DAY_START, NEXT_START):
        claim = await reconciler.reconcile("auth0", start)
        runs.append(claim.run)
    return runs


def test_generated_day_has_every_hard_case(traffic):
    """Guard: the seed must produce the cases the other tests rely on."""
    assert traffic.lost()
    assert traffic.abandoned()
    assert traffic.duplicates
    assert any(login.kind == "silent_login" and login.log_record for login in traffic.logins)
    assert any(login.logged_at and login.logged_at.date() > SIM_DAY for login in traffic.logins)
    sessions = Counter(login.session_id for login in traffic.logins if login.kind == "login" and login.session_id)
    assert max(sessions.values()) > 1


async def test_ledger_equals_truth_after_reconciliation(database, traffic, day_reconciler):
    for login in traffic.pushed():
        await push_login(database, login)

    runs = await reconcile_both_days(day_reconciler)

    assert [run.status for run in runs] == ["succeeded", "succeeded"]
    assert await ledger_counts(database) == traffic.expected_daily_counts()
    lost_with_log = [login for login in traffic.lost() if login.log_record is not None]
    assert sum(run.gaps_filled for run in runs) == len(lost_with_log)
    pushed_abandoned = [login for login in traffic.abandoned() if login.pushed]
    assert sum(run.pushes_without_log for run in runs) == len(pushed_abandoned)
    reconciled = [row for row in await ledger_rows(database) if row.origin == Origin.RECONCILIATION]
    assert {row.log_record_id for row in reconciled} == {login.log_id for login in lost_with_log}


async def test_second_pass_changes_nothing(database, traffic, day_reconciler):
    for login in traffic.pushed():
        await push_login(database, login)
    await reconcile_both_days(day_reconciler)
    before = [(row.id, row.idempotency_key) for row in await ledger_rows(database)]

    again = await reconcile_both_days(day_reconciler)

    assert [(run.gaps_filled, run.rows_retracted) for run in again] == [(0, 0), (0, 0)]
    assert [(row.id, row.idempotency_key) for row in await ledger_rows(database)] == before


async def test_late_pushes_are_retracted_and_counts_hold(database, traffic, day_reconciler):
    for login in traffic.pushed():
        await push_login(database, login)
    await reconcile_both_days(day_reconciler)
    late = [
        login
        for login in traffic.lost()
        if login.log_record is not None and login.logged_at.date() == login.occurred_at.date() == SIM_DAY
    ][:3]
    assert late

    for login in late:
        await push_login(database, login)
    runs = await reconcile_both_days(day_reconciler)

    assert runs[0].rows_retracted == len(late)
    assert runs[0].gaps_filled == 0
    assert await ledger_counts(database) == traffic.expected_daily_counts()


async def test_everything_lost_is_filled_from_logs(database, traffic, day_reconciler):
    """With no push at all the ledger contains one row per logged login, however often it was delivered."""
    runs = await reconcile_both_days(day_reconciler)

    logged = [login for login in traffic.logins if login.log_record is not None]
    assert sum(run.gaps_filled for run in runs) == len(logged)
    assert sum(run.pushes_without_log for run in runs) == 0
    assert runs[0].rows_scanned >= len([login for login in logged if login.logged_at.date() == SIM_DAY])


def login_log(log_id: str, user: str, logged_at: datetime) -> dict:
    return {
        "log_id": log_id,
        "date": logged_at.isoformat().replace("+00:00", "Z"),
        "type": "s",
        "user_id": user,
        "client_id": "web",
        "details": {"transaction_id": f"tx-{log_id}", "session_id": f"s-{log_id}"},
    }


async def test_records_in_next_days_partition_are_read(database, tmp_path):
    """A record dated 23:50 that reaches Firehose at 00:10 sits under the next day's dt= prefix."""
    root = tmp_path / "partitions"
    evening = NEXT_START - timedelta(minutes=10)
    stream = [
        (DAY_START + timedelta(hours=9, seconds=1), login_log("90001", "auth0|early", DAY_START + timedelta(hours=9))),
        (NEXT_START + timedelta(minutes=10), login_log("90002", "auth0|late", evening)),
    ]
    summary = write_log_stream(stream, root, buffer_seconds=60)
    assert sorted(summary.lines_per_partition) == [SIM_DAY, SIM_DAY + timedelta(days=1)]
    clock = FakeClock(NEXT_START + timedelta(hours=3))
    reconciler = Reconciler(
        database, reconciliation_config(root), engine_factory=lambda settings: DuckDBEngine(), clock=clock
    )

    run = (await reconciler.reconcile("auth0", DAY_START)).run

    assert run.status == "succeeded"
    assert run.gaps_filled == 2
    rows = [row for row in await ledger_rows(database) if row.origin == Origin.RECONCILIATION]
    assert {(row.subject, row.occurred_at) for row in rows} == {
        ("auth0|early", DAY_START + timedelta(hours=9)),
        ("auth0|late", evening),
    }
