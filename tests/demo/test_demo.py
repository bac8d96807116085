"""`hookledger demo` end to end at a small size, and its parts that need no service."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import app as cli
from app.demo import runner
from app.demo.ledger import LedgerSnapshot
from app.demo.pushes import PushOutcome, parse_action_line
from app.demo.report import kind_truth, ledger_checks, push_checks
from app.demo.runner import check_day, default_day
from app.demo.traffic import KINDS, Traffic, generate_day

# 40 users, seed 51 and 20% loss give a day with every case the checks need.
# It has duplicated log records of delivered pushes and logins abandoned at MFA.
# One delivered push has its log record on the next day, and one lost push is
# filled only by the next day's window.
USERS = 40
SEED = 51
LOSS = 0.2
DEMO_ARGS = ["demo", "--users", str(USERS), "--seed", str(SEED), "--loss", str(LOSS)]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*DEMO_ARGS, *args], catch_exceptions=False)


def traffic_for(report: dict[str, Any]) -> Traffic:
    """Generate the report's day again, independently of the demo run."""
    return generate_day(date.fromisoformat(report["settings"]["day"]), USERS, SEED, loss=LOSS)


@pytest.fixture(scope="module")
def json_run() -> tuple[Result, dict[str, Any]]:
    result = invoke("--json")
    return result, json.loads(result.stdout)


# --- end to end ----------------------------------------------------------------------------


def test_demo_json_reports_no_difference(json_run: tuple[Result, dict[str, Any]]) -> None:
    """The JSON report parses, every check passes, and the exit status is 0."""
    result, report = json_run

    assert result.exit_code == 0, result.stderr
    assert report["ok"] is True
    assert report["differences"] == []
    assert report["checks"]
    assert all(check["ok"] for check in report["checks"])
    assert report["rerun_changed_nothing"] is True
    assert report["action"]["runner"] == ("node" if shutil.which("node") else "python")


def test_demo_json_counts_equal_truth(json_run: tuple[Result, dict[str, Any]]) -> None:
    """The reported counts equal what the generator's traffic implies, recomputed here."""
    _, report = json_run
    traffic = traffic_for(report)
    day = traffic.day

    lost_and_logged = [login for login in traffic.logins if not login.pushed and login.log_record is not None]
    assert sum(row["filled_by_reconciliation"] for row in report["kinds"].values()) == len(lost_and_logged)
    assert sum(run["gaps_filled"] for run in report["runs"]) == len(lost_and_logged)
    assert sum(run["gaps_filled"] for run in report["reruns"]) == 0
    assert sum(run["rows_retracted"] for run in report["reruns"]) == 0

    expected = traffic.expected_daily_counts()
    logins = report["metrics"]["logins"]["days"]
    for offset in (0, 1):
        bucket_day = day + timedelta(days=offset)
        total = sum(count for (_, counted_day), count in expected.items() if counted_day == bucket_day)
        assert logins[bucket_day.isoformat()]["after"]["value"] == total
        assert logins[bucket_day.isoformat()]["after_second_run"]["value"] == total
    assert logins[(day + timedelta(days=1)).isoformat()]["after"]["reconciled"] >= 1


def test_demo_text_with_python_port() -> None:
    """With --python-action the report names the Python port, and still matches the truth."""
    result = invoke("--python-action")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Action: Python port app/demo/action.py (chosen with --python-action)" in result.stdout
    assert "The second run over the same windows changed nothing." in result.stdout
    assert ", 0 differ." in result.stdout
    assert "DIFFERS" not in result.stdout


def redelivered_under_new_ids(traffic: Traffic) -> tuple[list[tuple[datetime, dict[str, Any]]], frozenset[str]]:
    """Deliver each duplicated record a second time under a new log_id, as a faulty stream would."""
    records = list(traffic.log_records)
    for arrival, record in traffic.log_records:
        if record["log_id"] in traffic.duplicates:
            copy = {**record, "log_id": record["log_id"][:-6] + "999999"}
            records.append((arrival + timedelta(minutes=7), copy))
    records.sort(key=lambda pair: pair[0])
    return records, frozenset()


def test_demo_names_differing_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplicates that arrive under new log ids are counted twice, and the demo exits 1 naming the count."""
    day = default_day(datetime.now(UTC))
    traffic = generate_day(day, USERS, SEED, loss=LOSS)
    delivered = {login.log_id for login in traffic.logins if login.pushed}
    assert traffic.duplicates & delivered, "the seed must duplicate a record of a delivered push"
    monkeypatch.setattr(runner, "log_stream_for", redelivered_under_new_ids)

    result = invoke("--day", day.isoformat())

    # Every copy is a gap of its own: beside the push it duplicates, or beside the original.
    fillable = sum(not login.pushed and login.log_record is not None for login in traffic.logins)
    extra = len(traffic.duplicates)
    assert result.exit_code == 1
    assert "DIFFERS: (user, day) pairs whose logins per user per day differ: expected 0, got" in result.stdout
    assert f"DIFFERS: gaps filled by the first runs: expected {fillable}, got {fillable + extra}" in result.stdout


# --- options rejected before the service starts ---------------------------------------------


def test_demo_rejects_used_data_dir(tmp_path: Path) -> None:
    (tmp_path / "hookledger.sqlite3").write_bytes(b"")

    result = invoke("--data-dir", str(tmp_path))

    assert result.exit_code == 2
    assert "already contains a demo ledger" in result.stderr


def test_demo_rejects_unsettled_day() -> None:
    today = datetime.now(UTC).date()

    result = invoke("--day", today.isoformat())

    assert result.exit_code == 2
    assert "is too recent" in result.stderr


def test_check_day_bounds() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    assert default_day(now) == date(2026, 12, 2)
    check_day(date(2026, 12, 2), now)
    check_day(date(2026, 11, 28), now)
    with pytest.raises(ValueError, match="too recent"):
        check_day(date(2026, 12, 3), now)
    with pytest.raises(ValueError, match="too old"):
        check_day(date(2026, 11, 27), now)


def test_default_day_waits_for_settle_lag() -> None:
    """Before 01:00 UTC yesterday's window is not settled, so the demo's day moves back one more."""
    assert default_day(datetime(2026, 12, 4, 0, 30, tzinfo=UTC)) == date(2026, 12, 1)


# --- parts ---------------------------------------------------------------------------------


def test_parse_action_line_sent() -> None:
    line = "hookledger push sent: id=login_abc kind=login attempts=1 status=200 result=accepted"

    outcome = parse_action_line(3, line)

    assert outcome == PushOutcome(3, True, "login_abc", "accepted", None, 1, line)


def test_parse_action_line_failed() -> None:
    line = ("hookledger push failed: id=login_abc kind=refresh attempts=2 "
            "network_error=TypeError/ECONNREFUSED budget_ms=10000")

    outcome = parse_action_line(0, line)

    assert outcome.delivered is False
    assert outcome.attempts == 2
    assert outcome.problem == "network_error=TypeError/ECONNREFUSED"


def test_parse_action_line_unexpected() -> None:
    outcome = parse_action_line(0, "something else")

    assert outcome.delivered is False
    assert outcome.problem is not None and "unexpected log line" in outcome.problem


def truthful_snapshot(traffic: Traffic) -> LedgerSnapshot:
    """Build the snapshot that a correct ledger would give for `traffic`."""
    by_kind: dict[tuple[str, date, str], int] = {}
    by_origin: dict[tuple[str, str], int] = {}
    for kind in KINDS:
        for (subject, day), count in traffic.expected_daily_counts(kind).items():
            by_kind[(subject, day, kind)] = count
    for login in traffic.logins:
        if login.ledger_day is None:
            continue
        origin = "push" if login.pushed else "reconciliation"
        by_origin[(origin, login.kind)] = by_origin.get((origin, login.kind), 0) + 1
    return LedgerSnapshot(
        by_subject_day=traffic.expected_daily_counts(),
        by_subject_day_kind=by_kind,
        by_origin_kind=by_origin,
        rows=sum(traffic.expected_daily_counts().values()),
        digest="x",
    )


def test_ledger_checks_pass_on_truth() -> None:
    traffic = generate_day(date(2026, 12, 2), USERS, SEED, loss=LOSS)

    checks = ledger_checks(traffic, kind_truth(traffic), truthful_snapshot(traffic))

    assert [check.describe() for check in checks if not check.ok] == []


def test_ledger_checks_name_one_extra_login() -> None:
    traffic = generate_day(date(2026, 12, 2), USERS, SEED, loss=LOSS)
    snapshot = truthful_snapshot(traffic)
    subject, day = next(iter(snapshot.by_subject_day))
    counts = dict(snapshot.by_subject_day)
    counts[(subject, day)] += 1

    checks = ledger_checks(traffic, kind_truth(traffic), replace(snapshot, by_subject_day=counts))
    failed = [check for check in checks if not check.ok]

    assert len(failed) == 1
    assert failed[0].name == "(user, day) pairs whose logins per user per day differ"
    assert failed[0].actual == 1
    assert f"{subject} on {day}" in failed[0].detail


def test_push_checks_wrong_fate() -> None:
    traffic = generate_day(date(2026, 12, 2), USERS, SEED, loss=LOSS)
    outcomes = [
        PushOutcome(index, login.pushed, None, "accepted" if login.pushed else None, None, 1, "line")
        for index, login in enumerate(traffic.logins)
    ]
    first_lost = next(index for index, login in enumerate(traffic.logins) if not login.pushed)
    outcomes[first_lost] = replace(outcomes[first_lost], delivered=True, result="accepted")

    checks = {check.name: check for check in push_checks(traffic, outcomes)}

    assert checks["pushes whose outcome differs from the generator's"].actual == 1
    assert checks["pushes the service stored as duplicates"].actual == 0
