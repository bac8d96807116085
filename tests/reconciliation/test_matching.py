"""Pairing log records with pushes: each rule, the assignment, and properties over random inputs."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.reconciliation.matching import MatchRules, Occurrence, Pair, is_compatible, match_occurrences

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RULES = MatchRules(tolerance=timedelta(seconds=120), transaction_tolerance=timedelta(minutes=30))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def log(id: str, seconds: float, **fields: object) -> Occurrence:
    values: dict = {"subject": "user_1", "event_type": "login", "client_id": "web"} | fields
    return Occurrence(id=id, occurred_at=at(seconds), **values)


def push(id: str, seconds: float, **fields: object) -> Occurrence:
    return log(id, seconds, **fields)


class TestSingleRules:
    def test_nearest_push_within_tolerance_pairs(self):
        result = match_occurrences([log("L1", 30)], [push("P1", 0)], RULES)
        assert result.pairs == (Pair("L1", "P1", "time"),)
        assert result.unmatched_logs == ()
        assert result.unmatched_pushes == ()

    def test_push_outside_tolerance_stays_apart(self):
        result = match_occurrences([log("L1", 121)], [push("P1", 0)], RULES)
        assert result.pairs == ()
        assert result.unmatched_logs == ("L1",)
        assert result.unmatched_pushes == ("P1",)

    def test_tolerance_bound_is_inclusive(self):
        result = match_occurrences([log("L1", 120)], [push("P1", 0)], RULES)
        assert result.pairs == (Pair("L1", "P1", "time"),)

    def test_other_event_type_never_pairs(self):
        result = match_occurrences([log("L1", 1, event_type="refresh")], [push("P1", 0)], RULES)
        assert result.pairs == ()

    def test_other_subject_never_pairs(self):
        result = match_occurrences([log("L1", 1, subject="user_2")], [push("P1", 0)], RULES)
        assert result.pairs == ()

    def test_other_client_never_pairs(self):
        result = match_occurrences([log("L1", 1, client_id="spa")], [push("P1", 0)], RULES)
        assert result.pairs == ()

    def test_missing_client_on_one_side_pairs(self):
        result = match_occurrences([log("L1", 1, client_id=None)], [push("P1", 0)], RULES)
        assert result.pairs == (Pair("L1", "P1", "time"),)

    def test_transaction_id_pairs_beyond_tolerance(self):
        result = match_occurrences(
            [log("L1", 600, transaction_id="tx1")], [push("P1", 0, transaction_id="tx1")], RULES
        )
        assert result.pairs == (Pair("L1", "P1", "transaction_id"),)

    def test_transaction_id_beyond_its_bound_stays_apart(self):
        result = match_occurrences(
            [log("L1", 1801, transaction_id="tx1")], [push("P1", 0, transaction_id="tx1")], RULES
        )
        assert result.pairs == ()

    def test_transaction_id_beats_a_nearer_push(self):
        logs = [log("L1", 50, transaction_id="tx1")]
        pushes = [push("P_near", 49, transaction_id=None), push("P_tx", 0, transaction_id="tx1")]
        result = match_occurrences(logs, pushes, RULES)
        assert result.pairs == (Pair("L1", "P_tx", "transaction_id"),)
        assert result.unmatched_pushes == ("P_near",)

    def test_different_transaction_ids_never_pair(self):
        result = match_occurrences([log("L1", 5, transaction_id="tx2")], [push("P1", 0, transaction_id="tx1")], RULES)
        assert result.pairs == ()

    def test_different_transaction_ids_pair_when_untrusted(self):
        rules = MatchRules(RULES.tolerance, RULES.transaction_tolerance, trust_transaction_id=False)
        result = match_occurrences([log("L1", 5, transaction_id="tx2")], [push("P1", 0, transaction_id="tx1")], rules)
        assert result.pairs == (Pair("L1", "P1", "time"),)

    def test_silent_auth_without_log_transaction_pairs_by_time(self):
        """`ssa` records carry no transaction id although the Action's event has one."""
        logs = [log("L1", 1, event_type="silent_login", transaction_id=None, session_id="s1")]
        pushes = [push("P1", 0, event_type="silent_login", transaction_id="tx1", session_id="s1")]
        result = match_occurrences(logs, pushes, RULES)
        assert result.pairs == (Pair("L1", "P1", "time"),)

    def test_session_breaks_a_tie_between_candidates(self):
        logs = [log("L1", 10, session_id="s2")]
        pushes = [push("P_s1", 0, session_id="s1"), push("P_s2", 0, session_id="s2")]
        result = match_occurrences(logs, pushes, RULES)
        assert result.pairs == (Pair("L1", "P_s2", "time"),)

    def test_shared_session_does_not_pair_outside_tolerance(self):
        """SSO re-logins share a session id; the id alone is no reason to pair."""
        logs = [log("L1", 0, session_id="s1"), log("L2", 3600, session_id="s1")]
        pushes = [push("P1", -1, session_id="s1")]
        result = match_occurrences(logs, pushes, RULES)
        assert result.pairs == (Pair("L1", "P1", "time"),)
        assert result.unmatched_logs == ("L2",)

    def test_sso_relogins_pair_one_to_one(self):
        logs = [log(f"L{i}", i * 300 + 2, session_id="s1", transaction_id=None) for i in range(4)]
        pushes = [push(f"P{i}", i * 300, session_id="s1", transaction_id=None) for i in range(3)]
        result = match_occurrences(logs, pushes, RULES)
        assert [pair.push_id for pair in result.pairs] == ["P0", "P1", "P2"]
        assert [pair.log_id for pair in result.pairs] == ["L0", "L1", "L2"]
        assert result.unmatched_logs == ("L3",)

    def test_push_without_log_stays_unmatched(self):
        """A login abandoned at MFA is pushed but never logged."""
        logs = [log("L1", 40, transaction_id="tx1")]
        pushes = [push("P1", 0, transaction_id="tx1"), push("P_mfa", 20, transaction_id="tx2")]
        result = match_occurrences(logs, pushes, RULES)
        assert result.pairs == (Pair("L1", "P1", "transaction_id"),)
        assert result.unmatched_pushes == ("P_mfa",)

    def test_duplicate_log_ids_collapse(self):
        logs = [log("L1", 5), log("L1", 5)]
        result = match_occurrences(logs, [], RULES)
        assert result.unmatched_logs == ("L1",)

    def test_empty_inputs(self):
        result = match_occurrences([], [], RULES)
        assert (result.pairs, result.unmatched_logs, result.unmatched_pushes) == ((), (), ())


class TestAssignment:
    def test_augmenting_path_finds_the_second_pair(self):
        """The best single edge (L1-P1, 10 s) blocks L0; augmenting moves L1 to P2."""
        logs = [log("L0", -20), log("L1", 100)]
        pushes = [push("P1", 90), push("P2", 200)]
        result = match_occurrences(logs, pushes, RULES)
        assert len(result.pairs) == 2
        assert set(result.pairs) == {Pair("L0", "P1", "time"), Pair("L1", "P2", "time")}

    def test_augmenting_keeps_transaction_pairs(self):
        logs = [log("L0", 0, transaction_id=None), log("L1", 60, transaction_id="tx1")]
        pushes = [push("P1", 50, transaction_id="tx1")]
        result = match_occurrences(logs, pushes, RULES)
        assert result.pairs == (Pair("L1", "P1", "transaction_id"),)
        assert result.unmatched_logs == ("L0",)

    def test_long_chain_is_augmented_without_recursion(self):
        """A chain of 3000 records, each able to take its neighbours' pushes, pairs completely."""
        logs = [log(f"L{i:05d}", i * 100 + 60) for i in range(3000)]
        pushes = [push(f"P{i:05d}", i * 100 + 100) for i in range(3000)]
        result = match_occurrences(logs, pushes, RULES)
        assert len(result.pairs) == 3000


# --- properties over random inputs ------------------------------------------------------------

SUBJECTS = st.sampled_from(["u1", "u2"])
TYPES = st.sampled_from(["login", "silent_login"])
OPTIONAL_CLIENT = st.sampled_from([None, "web", "spa"])
OPTIONAL_TRANSACTION = st.sampled_from([None, "tx1", "tx2", "tx3"])
OPTIONAL_SESSION = st.sampled_from([None, "s1", "s2"])


@st.composite
def occurrences(draw: st.DrawFn, prefix: str, with_transactions: bool = True) -> list[Occurrence]:
    count = draw(st.integers(min_value=0, max_value=8))
    items = []
    for index in range(count):
        items.append(
            Occurrence(
                id=f"{prefix}{index}",
                subject=draw(SUBJECTS),
                event_type=draw(TYPES),
                occurred_at=at(draw(st.integers(min_value=0, max_value=900))),
                transaction_id=draw(OPTIONAL_TRANSACTION) if with_transactions else None,
                session_id=draw(OPTIONAL_SESSION),
                client_id=draw(OPTIONAL_CLIENT),
            )
        )
    return items


@settings(max_examples=200, deadline=None)
@given(logs=occurrences("L"), pushes=occurrences("P"), seed=st.integers(0, 2**16))
def test_properties_of_any_result(logs, pushes, seed):
    result = match_occurrences(logs, pushes, RULES)
    by_id = {item.id: item for item in logs + pushes}

    used_pushes = [pair.push_id for pair in result.pairs]
    used_logs = [pair.log_id for pair in result.pairs]
    assert len(used_pushes) == len(set(used_pushes))
    assert len(used_logs) == len(set(used_logs))
    assert set(used_logs) | set(result.unmatched_logs) == {item.id for item in logs}
    assert set(used_pushes) | set(result.unmatched_pushes) == {item.id for item in pushes}
    assert not set(used_logs) & set(result.unmatched_logs)

    for pair in result.pairs:
        left, right = by_id[pair.log_id], by_id[pair.push_id]
        assert is_compatible(left, right, RULES)
        distance = abs(left.occurred_at - right.occurred_at)
        if pair.reason == "transaction_id":
            assert left.transaction_id == right.transaction_id is not None
            assert distance <= RULES.transaction_tolerance
        else:
            assert distance <= RULES.tolerance

    shuffler = random.Random(seed)
    shuffled_logs, shuffled_pushes = list(logs), list(pushes)
    shuffler.shuffle(shuffled_logs)
    shuffler.shuffle(shuffled_pushes)
    assert match_occurrences(shuffled_logs, shuffled_pushes, RULES) == result


@settings(max_examples=200, deadline=None)
@given(logs=occurrences("L"), pushes=occurrences("P"))
def test_no_free_pair_is_left_compatible(logs, pushes):
    """Maximality: no unpaired log record could still pair with an unpaired push."""
    result = match_occurrences(logs, pushes, RULES)
    free_logs = [item for item in logs if item.id in result.unmatched_logs]
    free_pushes = [item for item in pushes if item.id in result.unmatched_pushes]
    for left, right in itertools.product(free_logs, free_pushes):
        if is_compatible(left, right, RULES):
            assert abs(left.occurred_at - right.occurred_at) > RULES.tolerance


def maximum_pairs(logs: list[Occurrence], pushes: list[Occurrence]) -> int:
    """Count the pairs of a maximum matching by trying every assignment (small inputs only)."""
    best = 0
    for chosen in itertools.product([None, *range(len(pushes))], repeat=len(logs)):
        used = [index for index in chosen if index is not None]
        if len(used) != len(set(used)):
            continue
        if all(
            index is None
            or (
                is_compatible(logs[position], pushes[index], RULES)
                and abs(logs[position].occurred_at - pushes[index].occurred_at) <= RULES.tolerance
            )
            for position, index in enumerate(chosen)
        ):
            best = max(best, len(used))
    return best


@st.composite
def dense_occurrences(draw: st.DrawFn, prefix: str) -> list[Occurrence]:
    count = draw(st.integers(min_value=0, max_value=5))
    return [
        Occurrence(
            id=f"{prefix}{index}",
            subject="u1",
            event_type="login",
            occurred_at=at(draw(st.integers(min_value=0, max_value=400))),
            session_id=draw(OPTIONAL_SESSION),
            client_id=draw(OPTIONAL_CLIENT),
        )
        for index in range(count)
    ]


@settings(max_examples=150, deadline=None)
@given(logs=dense_occurrences("L"), pushes=dense_occurrences("P"))
def test_pair_count_is_maximum(logs, pushes):
    result = match_occurrences(logs, pushes, RULES)
    assert len(result.pairs) == maximum_pairs(logs, pushes)
