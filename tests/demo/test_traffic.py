"""Tests for the simulated Auth0 day and its ground truth."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.demo.action import classify_kind, derive_webhook_id
from app.demo.traffic import KINDS, Login, Traffic, generate_day, iter_log_records

DAY = date(2024, 1, 15)
SEED = 11
USERS = 1500
SAMPLES = Path(__file__).parents[1] / "data" / "auth0"
REPO_ROOT = Path(__file__).parents[2]

# Written out here, apart from the module's own table, so that the tests check it.
TYPE_OF_KIND = {"login": "s", "silent_login": "ssa", "refresh": "sertft",
                "password_grant": "sepft"}
KIND_OF_TYPE = {log_type: kind for kind, log_type in TYPE_OF_KIND.items()}
AUTH0_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return generate_day(DAY, USERS, SEED)


def parse_date(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def load_sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def login_records(traffic: Traffic) -> list[dict]:
    return [record for _, record in traffic.log_records if record["type"] in KIND_OF_TYPE]


def digest(traffic: Traffic) -> str:
    """Hash everything the generator produced, in order."""
    payload = {
        "logins": [
            [login.kind, login.user_id, login.occurred_at.isoformat(), login.session_id,
             login.transaction_id, login.lost, login.abandoned_at_mfa,
             login.event, login.log_record]
            for login in traffic.logins
        ],
        "records": [[arrival.isoformat(), record] for arrival, record in traffic.log_records],
        "duplicates": sorted(traffic.duplicates),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_same_traffic(traffic: Traffic) -> None:
    again = generate_day(DAY, USERS, SEED)

    assert again.logins == traffic.logins
    assert [login.event for login in again.logins] == [login.event for login in traffic.logins]
    assert again.log_records == traffic.log_records
    assert again.duplicates == traffic.duplicates


def test_other_seed_other_traffic() -> None:
    other = generate_day(DAY, 300, SEED + 1)
    same_size = generate_day(DAY, 300, SEED)

    assert other.logins != same_size.logins
    assert other.log_records != same_size.log_records


def test_same_seed_across_processes(traffic: Traffic) -> None:
    """A fresh interpreter with another string hash seed produces identical traffic."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])\n"
        "from datetime import date\n"
        "from app.demo.traffic import generate_day\n"
        "from test_traffic import digest\n"
        f"print(digest(generate_day(date(2024, 1, 15), {USERS}, {SEED})))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO_ROOT), str(Path(__file__).parent)],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )

    assert result.stdout.strip() == digest(traffic)


def test_generate_day_uses_no_global_random() -> None:
    import random

    random.seed(1)
    first = digest(generate_day(DAY, 50, 3))
    random.seed(2)
    second = digest(generate_day(DAY, 50, 3))

    assert first == second


# --- counts and truth helpers --------------------------------------------------------------


def test_summary_counts_add_up(traffic: Traffic) -> None:
    summary = traffic.summary()

    assert set(summary) == set(KINDS)
    assert sum(part.executions for part in summary.values()) == len(traffic.logins)
    for kind, part in summary.items():
        assert part.executions > 0, kind
        assert part.pushed + part.lost_timeout + part.lost_service_down == part.executions
        assert part.logged + part.abandoned_at_mfa == part.executions
        assert part.logged == sum(1 for record in login_records(traffic)
                                  if record["type"] == TYPE_OF_KIND[kind])
    assert sum(part.abandoned_at_mfa for part in summary.values()) == len(traffic.abandoned())


def test_pushed_and_lost_partition_logins(traffic: Traffic) -> None:
    pushed, lost = traffic.pushed(), traffic.lost()

    assert len(pushed) + len(lost) == len(traffic.logins)
    assert all(login.pushed and login.lost is None for login in pushed)
    assert all(not login.pushed for login in lost)


def test_loss_share_and_reasons(traffic: Traffic) -> None:
    lost = traffic.lost()
    reasons = Counter(login.lost for login in lost)

    assert len(lost) == round(0.05 * len(traffic.logins))
    assert set(reasons) == {"timeout", "service_down"}
    assert reasons["service_down"] == len(lost) // 2


def test_service_down_is_one_outage(traffic: Traffic) -> None:
    """Every push between the first and the last outage loss is lost to the outage too."""
    positions = [i for i, login in enumerate(traffic.logins) if login.lost == "service_down"]

    assert positions == list(range(positions[0], positions[-1] + 1))


def test_no_loss_when_loss_is_zero() -> None:
    traffic = generate_day(DAY, 100, 5, loss=0.0)

    assert traffic.lost() == []


def test_logins_sorted_and_within_day(traffic: Traffic) -> None:
    start = datetime(2024, 1, 15, tzinfo=UTC)
    times = [login.occurred_at for login in traffic.logins]

    assert times == sorted(times)
    assert all(start <= moment < start + timedelta(days=1) for moment in times)
    assert all(moment.microsecond % 1000 == 0 for moment in times)


def test_expected_counts_match_recomputation(traffic: Traffic) -> None:
    """Recount from the delivered stream: each log record once, then pushes without a record."""
    pushed_by_log_id = {login.log_id: login for login in traffic.pushed() if login.log_id}
    delivered = list(traffic.log_records) + [
        (arrival, record) for arrival, record in traffic.log_records
        if record["log_id"] in traffic.duplicates
    ]
    recount: Counter[tuple[str, date]] = Counter()
    per_kind: dict[str, Counter[tuple[str, date]]] = defaultdict(Counter)
    seen: set[str] = set()
    for _, record in delivered:
        if record["type"] not in KIND_OF_TYPE or record["log_id"] in seen:
            continue
        seen.add(record["log_id"])
        twin = pushed_by_log_id.get(record["log_id"])
        day = twin.occurred_at.date() if twin else parse_date(record["date"]).date()
        recount[(record["user_id"], day)] += 1
        per_kind[KIND_OF_TYPE[record["type"]]][(record["user_id"], day)] += 1
    for login in traffic.pushed():
        if login.log_record is None:
            recount[(login.user_id, login.occurred_at.date())] += 1
            per_kind[login.kind][(login.user_id, login.occurred_at.date())] += 1

    assert traffic.expected_daily_counts() == dict(recount)
    for kind in KINDS:
        assert traffic.expected_daily_counts(kind) == dict(per_kind[kind]), kind


def test_expected_counts_cover_day_boundary(traffic: Traffic) -> None:
    """Pushed logins whose record falls on the next day stay on the push's day."""
    crossing = [login for login in traffic.logins
                if login.logged_at and login.logged_at.date() > login.occurred_at.date()]
    counts = traffic.expected_daily_counts()

    assert crossing
    for login in crossing:
        assert login.ledger_day == (login.occurred_at.date() if login.pushed
                                    else login.logged_at.date())
    assert sum(counts.values()) == sum(1 for login in traffic.logins if login.ledger_day)


def test_lost_abandoned_login_counts_nothing() -> None:
    traffic = generate_day(DAY, 400, 2, loss=1.0)
    counts = traffic.expected_daily_counts()

    assert traffic.abandoned()
    assert sum(counts.values()) == len(login_records(traffic))


# --- logins and their log records ----------------------------------------------------------


def test_each_login_record_has_one_execution(traffic: Traffic) -> None:
    logins_by_log_id: dict[str, list[Login]] = defaultdict(list)
    for login in traffic.logins:
        if login.log_record is not None:
            logins_by_log_id[login.log_record["log_id"]].append(login)

    records = login_records(traffic)
    assert len({record["log_id"] for record in records}) == len(records)
    for record in records:
        owners = logins_by_log_id[record["log_id"]]
        assert len(owners) == 1, record["log_id"]
        assert TYPE_OF_KIND[owners[0].kind] == record["type"]
        assert owners[0].user_id == record["user_id"]
        assert owners[0].client_id == record["client_id"]


def test_each_completed_login_has_one_record(traffic: Traffic) -> None:
    listed = Counter(record["log_id"] for _, record in traffic.log_records)

    for login in traffic.logins:
        if login.abandoned_at_mfa:
            continue
        assert login.log_record is not None
        assert listed[login.log_record["log_id"]] == 1
        assert login.logged_at == parse_date(login.log_record["date"])


def test_mfa_abandoned_logins_have_no_record(traffic: Traffic) -> None:
    abandoned = traffic.abandoned()

    assert abandoned
    for login in abandoned:
        assert login.kind == "login"
        assert login.log_record is None
        assert login.logged_at is None
        assert login.session_id == login.event["session"]["id"]
    logged_sessions = {record["details"].get("session_id") for record in login_records(traffic)}
    assert not {login.session_id for login in abandoned} & logged_sessions


def test_sso_logins_share_session(traffic: Traffic) -> None:
    s_records = [record for record in login_records(traffic) if record["type"] == "s"]
    sso = [record for record in s_records if record["details"]["prompts"] == []]
    interactive_sessions = {record["details"]["session_id"] for record in s_records
                            if record["details"]["prompts"]}
    transaction_ids = [record["details"]["transaction_id"] for record in s_records]

    assert sso
    assert len(set(transaction_ids)) == len(transaction_ids)
    for record in sso:
        assert record["details"]["session_id"] in interactive_sessions
        assert "stats" not in record["details"]
        assert "connection" not in record
        assert record["connection_id"] == ""


def test_sso_login_event_reuses_session(traffic: Traffic) -> None:
    by_session: dict[str, list[Login]] = defaultdict(list)
    for login in traffic.logins:
        if login.kind == "login" and login.log_record is not None:
            by_session[login.session_id].append(login)
    reused = [group for group in by_session.values() if len(group) > 1]

    assert reused
    for group in reused:
        assert len({login.transaction_id for login in group}) == len(group)
        assert {login.event["session"]["id"] for login in group} == {group[0].session_id}


def test_s_records_carry_the_action_transaction_id(traffic: Traffic) -> None:
    for login in traffic.logins:
        if login.kind == "login" and login.log_record is not None:
            assert login.log_record["details"]["transaction_id"] == login.transaction_id
            assert login.event["transaction"]["id"] == login.transaction_id
            assert login.log_record["details"]["session_id"] == login.session_id


def test_silent_auth_records_lack_transaction_id(traffic: Traffic) -> None:
    silent = [login for login in traffic.logins if login.kind == "silent_login"]
    session_ids = {record["details"]["session_id"] for record in login_records(traffic)
                   if record["type"] == "s"}

    assert silent
    for login in silent:
        assert "transaction_id" not in login.log_record["details"]
        assert login.log_record["details"]["session_id"] == login.session_id
        assert login.session_id in session_ids
        assert "none" in login.event["transaction"]["prompt"]


def test_refresh_and_password_grant_have_no_session(traffic: Traffic) -> None:
    expected_protocol = {"refresh": "oauth2-refresh-token", "password_grant": "oauth2-password"}
    grants = [login for login in traffic.logins if login.kind in expected_protocol]

    assert {login.kind for login in grants} == set(expected_protocol)
    for login in grants:
        assert login.session_id is None
        assert login.transaction_id is None
        assert "session" not in login.event
        assert "id" not in login.event["transaction"]
        assert login.event["transaction"]["protocol"] == expected_protocol[login.kind]
        assert "session_id" not in login.log_record["details"]
        assert "transaction_id" not in login.log_record["details"]


def test_action_classifier_agrees_with_kind(traffic: Traffic) -> None:
    """The Action's own classification of each event gives the generator's kind."""
    for login in traffic.logins:
        assert classify_kind(login.event) == login.kind


def test_action_webhook_ids_distinct(traffic: Traffic) -> None:
    """No two executions get the same derived push id, so the ledger keeps each one."""
    derived = [derive_webhook_id(login.event, random_bytes=lambda size: b"\0" * size)
               for login in traffic.logins if login.kind != "refresh"]

    assert len(set(derived)) == len(derived)


def test_log_date_follows_action_closely(traffic: Traffic) -> None:
    gaps = [(login.logged_at - login.occurred_at).total_seconds()
            for login in traffic.logins if login.logged_at is not None]
    skewed = [gap for gap in gaps if gap > 3.0]

    assert min(gaps) > 0
    assert max(gaps) <= 60.0
    assert skewed
    assert len(skewed) < 0.1 * len(gaps)


def test_logins_count_matches_record(traffic: Traffic) -> None:
    last_count: dict[str, int] = {}
    for login in traffic.logins:
        count = login.event["stats"]["logins_count"]
        assert count >= last_count.get(login.user_id, 0)
        last_count[login.user_id] = count
        record = login.log_record
        if record is not None and record["type"] == "s" and record["details"]["prompts"]:
            assert record["details"]["stats"]["loginsCount"] == count


def test_some_logins_near_midnight(traffic: Traffic) -> None:
    after_start = [login for login in traffic.logins
                   if login.occurred_at.hour == 0 and login.occurred_at.minute < 3]
    before_end = [login for login in traffic.logins
                  if login.occurred_at.hour == 23 and login.occurred_at.minute >= 57]

    assert after_start
    assert before_end


def test_logins_per_user_heavy_tail(traffic: Traffic) -> None:
    per_user = Counter(login.user_id for login in traffic.logins if login.kind == "login")
    median = sorted(per_user.values())[len(per_user) // 2]

    assert max(per_user.values()) >= 12
    assert max(per_user.values()) > 5 * median


# --- shapes ---------------------------------------------------------------------------------


def test_event_shape_matches_sample(traffic: Traffic) -> None:
    sample = load_sample("post-login-event.json")
    login = next(login for login in traffic.logins if login.kind == "login")
    refresh = next(login for login in traffic.logins if login.kind == "refresh")

    assert set(login.event) == set(sample)
    assert set(refresh.event) == set(sample) - {"session"}
    assert set(login.event["user"]) == set(sample["user"])
    assert set(login.event["request"]) >= set(sample["request"])
    assert login.event["tenant"] == {"id": "demo"}
    assert isinstance(login.event["stats"]["logins_count"], int)
    for method in login.event["authentication"]["methods"]:
        assert AUTH0_DATE.match(method["timestamp"])


def test_interactive_record_shape_matches_sample(traffic: Traffic) -> None:
    sample = load_sample("log-s.json")
    record = next(record for record in login_records(traffic)
                  if record["type"] == "s" and record["details"]["prompts"])

    assert set(record) == set(sample) | {"tenant_name"}
    assert set(record["details"]) == set(sample["details"]) | {"transaction_id", "actions"}
    assert record["tenant_name"] == "demo"


def test_sso_record_shape_matches_sample(traffic: Traffic) -> None:
    sample = load_sample("log-s-sso-session-reuse.json")
    record = next(record for record in login_records(traffic)
                  if record["type"] == "s" and not record["details"]["prompts"])

    assert set(record) == set(sample) | {"tenant_name"}
    assert set(record["details"]) == set(sample["details"]) | {"transaction_id", "actions"}


def test_record_dates_and_log_ids(traffic: Traffic) -> None:
    for _, record in traffic.log_records:
        assert AUTH0_DATE.match(record["date"])
        log_id = record["log_id"]
        assert re.fullmatch(r"900\d{53}", log_id)
        stamp = datetime.strptime(log_id[3:20], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
        lag = stamp - parse_date(record["date"])
        assert timedelta(0) <= lag < timedelta(seconds=3)


def test_noise_records_present_and_unowned(traffic: Traffic) -> None:
    noise = traffic.noise_records()
    owned = {login.log_id for login in traffic.logins}

    assert {record["type"] for record in noise} == {"f", "fp", "slo"}
    assert not {record["log_id"] for record in noise} & owned
    assert len(noise) + len(login_records(traffic)) == len(traffic.log_records)


# --- arrival and duplicates -----------------------------------------------------------------


def test_arrival_never_before_date(traffic: Traffic) -> None:
    arrivals = [arrival for arrival, _ in traffic.log_records]

    assert arrivals == sorted(arrivals)
    for arrival, record in traffic.log_records:
        assert arrival >= parse_date(record["date"])


def test_some_records_arrive_late_and_next_day(traffic: Traffic) -> None:
    delays = [arrival - parse_date(record["date"]) for arrival, record in traffic.log_records]
    next_day = [record for arrival, record in traffic.log_records
                if arrival.date() > DAY and parse_date(record["date"]).date() == DAY]

    assert next_day
    assert any(delay > timedelta(minutes=5) for delay in delays)
    assert max(delays) <= timedelta(minutes=45)
    assert sum(delay <= timedelta(minutes=5) for delay in delays) > 0.9 * len(delays)


def test_duplicates_at_requested_rate(traffic: Traffic) -> None:
    log_ids = {record["log_id"] for _, record in traffic.log_records}

    assert len(traffic.duplicates) == round(0.01 * len(traffic.log_records))
    assert traffic.duplicates <= log_ids


def test_custom_duplicate_rate() -> None:
    traffic = generate_day(DAY, 200, 4, duplicate_rate=0.1)

    assert len(traffic.duplicates) == round(0.1 * len(traffic.log_records))


def test_invalid_share_rejected() -> None:
    with pytest.raises(ValueError, match="loss"):
        generate_day(DAY, 10, 1, loss=1.5)


def test_no_users_no_traffic() -> None:
    traffic = generate_day(DAY, 0, 1)

    assert traffic.logins == []
    assert traffic.log_records == []
    assert traffic.expected_daily_counts() == {}


# --- streamed records -----------------------------------------------------------------------


def test_iter_log_records_streams_in_arrival_order() -> None:
    pairs = list(iter_log_records(5000, 9))
    arrivals = [arrival for arrival, _ in pairs]
    types = Counter(record["type"] for _, record in pairs)

    assert len(pairs) == 5000
    assert arrivals == sorted(arrivals)
    assert all(arrival >= parse_date(record["date"]) for arrival, record in pairs)
    assert len({record["log_id"] for _, record in pairs}) == 5000
    assert set(types) == {"s", "ssa", "sertft", "sepft", "f", "fp", "slo"}


def test_iter_log_records_is_deterministic() -> None:
    first = list(iter_log_records(500, 9))

    assert list(iter_log_records(500, 9)) == first
    assert list(iter_log_records(500, 10)) != first
