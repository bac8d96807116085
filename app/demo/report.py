"""Compare what the service counted with the generator's truth, and render the report.

Every number the demo prints next to a truth value is also a `Check`. A check
whose measured value differs from the truth makes the demo exit with status 1
and is named in the report's `DIFFERS:` lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from app.demo.ledger import LedgerSnapshot
from app.demo.pushes import PushOutcome
from app.demo.traffic import KINDS, Traffic

# Differing (user, day) pairs listed in the report; the check counts all of them.
LISTED_PAIRS = 5


@dataclass(frozen=True)
class Check:
    """One count the demo measured, with the value the truth requires."""

    name: str
    expected: int
    actual: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.actual

    def describe(self) -> str:
        text = f"{self.name}: expected {self.expected}, got {self.actual}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class KindTruth:
    """Counts of one kind's executions, by the fate the generator gave them."""

    executions: int
    pushed: int
    lost: int
    lost_timeout: int
    lost_service_down: int
    abandoned_at_mfa: int
    # Lost pushes that have a log record, which reconciliation must fill.
    fillable: int
    # Delivered pushes without a log record (abandoned at MFA).
    pushed_without_log: int


def kind_truth(traffic: Traffic) -> dict[str, KindTruth]:
    """Count the generator's executions per kind."""
    result = {}
    for kind in KINDS:
        logins = [login for login in traffic.logins if login.kind == kind]
        result[kind] = KindTruth(
            executions=len(logins),
            pushed=sum(login.pushed for login in logins),
            lost=sum(not login.pushed for login in logins),
            lost_timeout=sum(login.lost == "timeout" for login in logins),
            lost_service_down=sum(login.lost == "service_down" for login in logins),
            abandoned_at_mfa=sum(login.abandoned_at_mfa for login in logins),
            fillable=sum(not login.pushed and login.log_record is not None for login in logins),
            pushed_without_log=sum(login.pushed and login.log_record is None for login in logins),
        )
    return result


def daily_truth(traffic: Traffic, days: Sequence[date], kind: str | None = None) -> dict[date, dict[str, int]]:
    """Return the expected `value`, `pushed` and `reconciled` of each day, for one kind or all."""
    result = {day: {"value": 0, "pushed": 0, "reconciled": 0} for day in days}
    for login in traffic.logins:
        if kind is not None and login.kind != kind:
            continue
        day = login.ledger_day
        if day not in result:
            continue
        result[day]["value"] += 1
        result[day]["pushed" if login.pushed else "reconciled"] += 1
    return result


def series_by_day(series: Mapping[str, Any]) -> dict[date, dict[str, int]]:
    """Return a metric series' buckets by their UTC day."""
    return {
        date.fromisoformat(bucket["start"][:10]): {
            "value": bucket["value"], "pushed": bucket["pushed"], "reconciled": bucket["reconciled"]
        }
        for bucket in series["buckets"]
    }


def push_checks(traffic: Traffic, outcomes: Sequence[PushOutcome]) -> list[Check]:
    """Check that each push met the fate the generator gave it, and that no login was blocked."""
    wrong = [
        (login, outcome) for login, outcome in zip(traffic.logins, outcomes, strict=True)
        if outcome.delivered != login.pushed
    ]
    detail = ""
    if wrong:
        login, outcome = wrong[0]
        detail = f"first: a {login.kind} of {login.user_id} meant to be {'delivered' if login.pushed else 'lost'} logged {outcome.line!r}"
    blocked = sum(bool(outcome.api_calls) for outcome in outcomes)
    duplicates = sum(outcome.result == "duplicate" for outcome in outcomes)
    return [
        Check("pushes whose outcome differs from the generator's", 0, len(wrong), detail),
        Check("executions that called the post-login api (deny, redirect, ...)", 0, blocked),
        Check("pushes the service stored as duplicates", 0, duplicates),
    ]


def ledger_checks(traffic: Traffic, truths: Mapping[str, KindTruth], snapshot: LedgerSnapshot) -> list[Check]:
    """Check the ledger's rows by origin and kind, and its counts per user per day."""
    checks = []
    for kind, truth in truths.items():
        checks.append(Check(f"{kind}: pushed rows in the ledger", truth.pushed, snapshot.by_origin_kind.get(("push", kind), 0)))
        checks.append(Check(
            f"{kind}: rows filled by reconciliation",
            truth.fillable,
            snapshot.by_origin_kind.get(("reconciliation", kind), 0),
        ))

    expected = traffic.expected_daily_counts()
    checks.append(_pairs_check("logins per user per day", expected, snapshot.by_subject_day))
    for kind in KINDS:
        expected_kind = traffic.expected_daily_counts(kind)
        actual_kind = {
            (subject, day): count
            for (subject, day, row_kind), count in snapshot.by_subject_day_kind.items()
            if row_kind == kind
        }
        checks.append(_pairs_check(f"{kind} per user per day", expected_kind, actual_kind))
    return checks


def _pairs_check(name: str, expected: Mapping[tuple[str, date], int], actual: Mapping[tuple[str, date], int]) -> Check:
    """Count the (user, day) pairs whose count differs from the truth; the check expects 0."""
    differing = sorted(
        (key for key in set(expected) | set(actual) if expected.get(key, 0) != actual.get(key, 0)),
        key=lambda key: (key[1], key[0]),
    )
    listed = ", ".join(
        f"{subject} on {day}: expected {expected.get((subject, day), 0)}, got {actual.get((subject, day), 0)}"
        for subject, day in differing[:LISTED_PAIRS]
    )
    detail = f"{len(expected)} pairs, total expected {sum(expected.values())}, got {sum(actual.values())}"
    if differing:
        detail += f"; {listed}"
    return Check(f"(user, day) pairs whose {name} differ", 0, len(differing), detail)


def series_checks(
    label: str, metric: str, series: Mapping[str, Any], truth: Mapping[date, Mapping[str, int]]
) -> list[Check]:
    """Check a metric series' value, pushed and reconciled shares per day against the truth."""
    by_day = series_by_day(series)
    checks = []
    for day, expected in truth.items():
        actual = by_day.get(day, {"value": 0, "pushed": 0, "reconciled": 0})
        for part in ("value", "pushed", "reconciled"):
            checks.append(Check(f"metric {metric} {label} on {day}: {part}", expected[part], actual[part]))
    return checks


def before_truth(traffic: Traffic, days: Sequence[date], kind: str | None = None) -> dict[date, dict[str, int]]:
    """Return what the metric shows before reconciliation: the delivered pushes of each day."""
    result = {day: {"value": 0, "pushed": 0, "reconciled": 0} for day in days}
    for login in traffic.logins:
        if login.pushed and (kind is None or login.kind == kind) and login.occurred_at.date() in result:
            result[login.occurred_at.date()]["value"] += 1
            result[login.occurred_at.date()]["pushed"] += 1
    return result


def run_checks(
    truths: Mapping[str, KindTruth],
    runs: Sequence[Mapping[str, Any]],
    reruns: Sequence[Mapping[str, Any]],
    after: LedgerSnapshot,
    after_rerun: LedgerSnapshot,
) -> list[Check]:
    """Check the runs' own counts, and that running the same windows again changed nothing."""
    checks = [
        Check(
            "runs that did not succeed",
            0,
            sum(run["status"] != "succeeded" for run in [*runs, *reruns]),
            "; ".join(f"run {run['id']}: {run.get('error')}" for run in [*runs, *reruns] if run["status"] != "succeeded"),
        ),
        Check("gaps filled by the first runs", sum(t.fillable for t in truths.values()), sum(run["gaps_filled"] for run in runs)),
        Check("rows retracted by the first runs", 0, sum(run["rows_retracted"] for run in runs)),
        Check(
            "pushes without a log twin reported by the first runs",
            sum(t.pushed_without_log for t in truths.values()),
            sum(run["pushes_without_log"] for run in runs),
        ),
        Check("gaps filled by the second runs", 0, sum(run["gaps_filled"] for run in reruns)),
        Check("rows retracted by the second runs", 0, sum(run["rows_retracted"] for run in reruns)),
        Check("ledger rows after the second runs", after.rows, after_rerun.rows),
        Check(
            "ledger rows changed by the second runs",
            0,
            0 if after.digest == after_rerun.digest else 1,
            "1 means the set of (key, origin, run, time) differs",
        ),
    ]
    return checks


@dataclass
class DemoReport:
    """Everything the demo measured, the checks against the truth, and how long each step took."""

    settings: dict[str, Any]
    action: dict[str, str]
    traffic: dict[str, Any]
    pushes: dict[str, Any]
    kinds: dict[str, dict[str, int]]
    runs: list[dict[str, Any]]
    reruns: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    checks: list[Check]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def differences(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "differences": [check.describe() for check in self.differences],
            "settings": self.settings,
            "action": self.action,
            "traffic": self.traffic,
            "pushes": self.pushes,
            "kinds": self.kinds,
            "runs": self.runs,
            "reruns": self.reruns,
            "rerun_changed_nothing": not any(
                not check.ok for check in self.checks if "second runs" in check.name
            ),
            "metrics": self.metrics,
            "checks": [{**asdict(check), "ok": check.ok} for check in self.checks],
            "timings": self.timings,
        }


def outcome_summary(outcomes: Sequence[PushOutcome]) -> dict[str, int]:
    """Count push outcomes: accepted, duplicate, and each failure reason."""
    counts: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.delivered:
            counts[outcome.result or "delivered"] += 1
        else:
            counts[_failure_label(outcome.problem or "")] += 1
    return dict(sorted(counts.items()))


def _failure_label(problem: str) -> str:
    if "timed_out" in problem:
        return "timed out"
    if "ECONNREFUSED" in problem or "ConnectError" in problem:
        return "connection refused"
    return problem or "failed"


def window_days(day: date) -> list[date]:
    """Return the demo's reconciled days: the simulated day and the next, which late log records reach."""
    return [day, day + timedelta(days=1)]


def render_text(report: DemoReport) -> str:
    """Render the report for a terminal."""
    settings = report.settings
    lines = [
        f"hookledger demo: {settings['users']} users, seed {settings['seed']}, {settings['loss']:.0%} of pushes lost, "
        f"day {settings['day']} (UTC)",
        f"Action: {report.action['label']}",
        f"Data directory: {settings.get('data_dir', '')}",
        "",
        _traffic_line(report),
        f"Pushes: {', '.join(f'{count} {label}' for label, count in report.pushes['outcomes'].items())}",
        "",
    ]
    lines += _kind_table(report.kinds)
    lines.append("")
    lines.append("Reconciliation runs (POST /v1/reconciliations, DuckDB over the local log directory):")
    for label, runs in (("first ", report.runs), ("second", report.reruns)):
        for run in runs:
            lines.append(
                f"  {label} run {run['id']:>2} {run['window_start'][:10]} {run['status']}: "
                f"{run['rows_scanned']} log records read, {run['gaps_filled']} gaps filled, "
                f"{run['rows_retracted']} retracted, {run['pushes_without_log']} pushes without a log twin "
                f"({run['demo_seconds']} s)"
            )
    rerun_ok = report.to_json()["rerun_changed_nothing"]
    lines.append(
        "  The second run over the same windows changed nothing."
        if rerun_ok
        else "  The second run over the same windows CHANGED the ledger."
    )
    lines.append("")
    lines += _metric_table(report.metrics)
    lines.append("")
    passed = sum(check.ok for check in report.checks)
    lines.append(f"Checks against the generator's truth: {passed} passed, {len(report.differences)} differ.")
    for check in report.differences:
        lines.append(f"DIFFERS: {check.describe()}")
    timings = report.timings
    steps = ", ".join(
        f"{name.replace('_', ' ')} {seconds:.1f} s" for name, seconds in timings.items() if name != "total"
    )
    if "total" in timings:
        lines.append(f"Wall time {timings['total']:.1f} s ({steps}).")
    return "\n".join(lines)


def _traffic_line(report: DemoReport) -> str:
    traffic = report.traffic
    partitions = ", ".join(f"dt={day}: {lines}" for day, lines in traffic["lines_per_partition"].items())
    return (
        f"Generated {traffic['executions']} post-login executions and {traffic['log_records']} log records; "
        f"wrote {traffic['log_lines']} log lines ({traffic['redelivered']} redelivered) in {traffic['files']} "
        f"files ({partitions})."
    )


def _kind_table(kinds: Mapping[str, Mapping[str, int]]) -> list[str]:
    header = ("kind", "executions", "abandoned at MFA", "pushed", "lost", "filled", "pushed, no log twin")
    rows = [
        (
            kind,
            row["executions"],
            row["abandoned_at_mfa"],
            row["pushed"],
            row["lost"],
            row["filled_by_reconciliation"],
            row["pushed_without_log_twin"],
        )
        for kind, row in kinds.items()
    ]
    totals = ("total", *(sum(row[index] for row in rows) for index in range(1, len(header))))
    widths = [max(len(str(item[index])) for item in (header, *rows, totals)) for index in range(len(header))]

    def format_row(items: Sequence[object]) -> str:
        first = f"  {str(items[0]):<{widths[0]}}"
        rest = "  ".join(f"{str(item):>{width}}" for item, width in zip(items[1:], widths[1:], strict=True))
        return f"{first}  {rest}"

    return [format_row(header), *(format_row(row) for row in rows), format_row(totals)]


def _metric_table(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["Daily totals from GET /v1/metrics/{name}?interval=day (value = pushed + reconciled):"]
    lines.append(f"  {'metric':<22}  {'day':<10}  {'before':>16}  {'after':>16}  {'truth':>5}")
    for name, metric in metrics.items():
        for day, parts in metric["days"].items():
            lines.append(
                f"  {name:<22}  {day:<10}  {_shares(parts['before']):>16}  {_shares(parts['after']):>16}  "
                f"{parts['truth']['value']:>5}"
            )
    return lines


def _shares(parts: Mapping[str, int] | None) -> str:
    if parts is None:
        return "missing"
    return f"{parts['value']} = {parts['pushed']} + {parts['reconciled']}"
