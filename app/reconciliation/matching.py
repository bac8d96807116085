"""Pair log records with pushed events of one subject.

No field identifies one Auth0 login on both sides, so a log record and a push
are twins when they agree on subject, event type and client and lie close in
time. The optional ids act as hints:

1. Equal `transaction_id` on both sides pairs a log record and a push when
   they are at most `transaction_tolerance` apart. Candidates of one
   transaction id are taken nearest in time first.
2. The remaining log records and pushes pair when they are at most
   `tolerance` apart. A shared `session_id` is only a tiebreaker here,
   because every SSO re-login of a session carries the same session id.
   Two sides that both carry a transaction id, with different values, never
   pair while `trust_transaction_id` is set.

The assignment of step 2 is greedy by preference (same session first, then
the smallest time difference), followed by augmenting paths (Kuhn's
algorithm) over the time-compatible pairs, so the number of pairs is the
maximum possible. Every unpaired log record becomes a reconciliation row, so a
pair that a purely greedy pass misses would count one fact twice. Augmenting
never breaks a pair made in step 1.

The result depends only on the values of the inputs, not on their order:
inputs are sorted by (time, id) first, and every choice breaks ties on that
order. Each log record and each push is used at most once, and duplicate ids
collapse to the earliest occurrence (the tests check both).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

PairReason = Literal["transaction_id", "time"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One side of a possible pair: a log record or a pushed event."""

    id: str
    subject: str | None
    event_type: str
    occurred_at: datetime
    transaction_id: str | None = None
    session_id: str | None = None
    client_id: str | None = None

    @property
    def order_key(self) -> tuple[datetime, str]:
        return (self.occurred_at, self.id)


@dataclass(frozen=True, slots=True)
class MatchRules:
    """Time bounds and the trust placed in transaction ids."""

    tolerance: timedelta
    transaction_tolerance: timedelta
    trust_transaction_id: bool = True


@dataclass(frozen=True, slots=True)
class Pair:
    """A log record and the push that reported the same fact."""

    log_id: str
    push_id: str
    reason: PairReason


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Pairs, and the ids left without a twin, each in (time, id) order."""

    pairs: tuple[Pair, ...]
    unmatched_logs: tuple[str, ...]
    unmatched_pushes: tuple[str, ...]


def match_occurrences(logs: Iterable[Occurrence], pushes: Iterable[Occurrence], rules: MatchRules) -> MatchResult:
    """Pair log records with pushes under `rules`; see the module docstring for the rules."""
    sorted_logs = _unique_sorted(logs)
    sorted_pushes = _unique_sorted(pushes)
    state = _Assignment()

    _pair_by_transaction(sorted_logs, sorted_pushes, rules, state)
    edges = _time_edges(sorted_logs, sorted_pushes, rules, state)
    _pair_greedily(edges, state)
    _augment(sorted_logs, edges, state)

    pairs = tuple(
        Pair(log.id, state.log_to_push[log.id], state.reasons[log.id])
        for log in sorted_logs
        if log.id in state.log_to_push
    )
    return MatchResult(
        pairs=pairs,
        unmatched_logs=tuple(log.id for log in sorted_logs if log.id not in state.log_to_push),
        unmatched_pushes=tuple(push.id for push in sorted_pushes if push.id not in state.push_to_log),
    )


class _Assignment:
    """The pairs chosen so far, in both directions."""

    def __init__(self) -> None:
        self.log_to_push: dict[str, str] = {}
        self.push_to_log: dict[str, str] = {}
        self.reasons: dict[str, PairReason] = {}
        # Log records paired by transaction id; augmenting paths leave them alone.
        self.fixed_logs: set[str] = set()

    def assign(self, log_id: str, push_id: str, reason: PairReason) -> None:
        self.log_to_push[log_id] = push_id
        self.push_to_log[push_id] = log_id
        self.reasons[log_id] = reason


def _unique_sorted(items: Iterable[Occurrence]) -> list[Occurrence]:
    ordered = sorted(items, key=lambda item: item.order_key)
    seen: set[str] = set()
    unique = []
    for item in ordered:
        if item.id not in seen:
            seen.add(item.id)
            unique.append(item)
    return unique


def _distance(log: Occurrence, push: Occurrence) -> timedelta:
    return abs(log.occurred_at - push.occurred_at)


def is_compatible(log: Occurrence, push: Occurrence, rules: MatchRules) -> bool:
    """Return whether `log` and `push` may describe the same fact, whatever their times."""
    if log.subject != push.subject or log.event_type != push.event_type:
        return False
    if log.client_id is not None and push.client_id is not None and log.client_id != push.client_id:
        return False
    transactions_differ = (
        log.transaction_id is not None and push.transaction_id is not None and log.transaction_id != push.transaction_id
    )
    return not (rules.trust_transaction_id and transactions_differ)


def _pair_by_transaction(
    logs: Sequence[Occurrence], pushes: Sequence[Occurrence], rules: MatchRules, state: _Assignment
) -> None:
    pushes_by_transaction: dict[str, list[Occurrence]] = defaultdict(list)
    for push in pushes:
        if push.transaction_id is not None:
            pushes_by_transaction[push.transaction_id].append(push)

    candidates = []
    for log in logs:
        if log.transaction_id is None:
            continue
        for push in pushes_by_transaction.get(log.transaction_id, ()):
            if _distance(log, push) <= rules.transaction_tolerance and is_compatible(log, push, rules):
                candidates.append((_distance(log, push), log.order_key, push.order_key, log.id, push.id))

    for *_, log_id, push_id in sorted(candidates):
        if log_id not in state.log_to_push and push_id not in state.push_to_log:
            state.assign(log_id, push_id, "transaction_id")
            state.fixed_logs.add(log_id)


def _session_rank(log: Occurrence, push: Occurrence) -> int:
    if log.session_id is None or push.session_id is None:
        return 1
    return 0 if log.session_id == push.session_id else 2


# An edge's preference: (session rank, time difference, log order, push order).
_EdgeRank = tuple[int, timedelta, tuple[datetime, str], tuple[datetime, str]]


def _time_edges(
    logs: Sequence[Occurrence], pushes: Sequence[Occurrence], rules: MatchRules, state: _Assignment
) -> dict[str, list[tuple[_EdgeRank, str]]]:
    """Return, per free log record, its time-compatible free pushes, best first."""
    free_pushes = [push for push in pushes if push.id not in state.push_to_log]
    times = [push.occurred_at for push in free_pushes]
    edges: dict[str, list[tuple[_EdgeRank, str]]] = {}
    for log in logs:
        if log.id in state.log_to_push:
            continue
        low = bisect.bisect_left(times, log.occurred_at - rules.tolerance)
        high = bisect.bisect_right(times, log.occurred_at + rules.tolerance)
        ranked = [
            ((_session_rank(log, push), _distance(log, push), log.order_key, push.order_key), push.id)
            for push in free_pushes[low:high]
            if is_compatible(log, push, rules)
        ]
        if ranked:
            edges[log.id] = sorted(ranked)
    return edges


def _pair_greedily(edges: dict[str, list[tuple[_EdgeRank, str]]], state: _Assignment) -> None:
    ordered = sorted((rank, log_id, push_id) for log_id, ranked in edges.items() for rank, push_id in ranked)
    for _, log_id, push_id in ordered:
        if log_id not in state.log_to_push and push_id not in state.push_to_log:
            state.assign(log_id, push_id, "time")


def _augment(logs: Sequence[Occurrence], edges: dict[str, list[tuple[_EdgeRank, str]]], state: _Assignment) -> None:
    """Grow the time pairs to a maximum matching with augmenting paths.

    A failed search leaves the matching unchanged. The pushes it visited
    cannot lead to an augmenting path until a later search succeeds, so the
    visited set is kept across searches and cleared on success.
    """
    visited: set[str] = set()
    for log in logs:
        if log.id in state.log_to_push or log.id not in edges:
            continue
        if _find_augmenting_path(log.id, edges, state, visited):
            visited = set()


def _find_augmenting_path(
    start: str, edges: dict[str, list[tuple[_EdgeRank, str]]], state: _Assignment, visited: set[str]
) -> bool:
    # Iterative depth-first search: stack[i] is a log record and the iterator over its
    # pushes, path[i] the push that stack[i] would take if the path completes.
    stack = [(start, iter(edges.get(start, ())))]
    path: list[tuple[str, str]] = []
    while stack:
        log_id, candidates = stack[-1]
        advanced = False
        for _, push_id in candidates:
            if push_id in visited:
                continue
            visited.add(push_id)
            owner = state.push_to_log.get(push_id)
            if owner is not None and owner in state.fixed_logs:
                continue
            path.append((log_id, push_id))
            if owner is None:
                for path_log, path_push in path:
                    state.assign(path_log, path_push, "time")
                return True
            stack.append((owner, iter(edges.get(owner, ()))))
            advanced = True
            break
        if not advanced:
            stack.pop()
            if path:
                path.pop()
    return False
