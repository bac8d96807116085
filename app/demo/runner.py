"""Run the whole demo: a simulated Auth0 day pushed, logged, reconciled and checked.

Steps, each against the real service started by `running_service`:

1. Generate one UTC day of Auth0 post-login traffic with its truth.
2. Run the post-login Action for every execution (Node, or the Python port).
3. Write the tenant log stream as Firehose lands it on S3, into the local
   log directory that the DuckDB engine reads.
4. Read the metric series (before), reconcile the day and the next one
   (late log records of the day's last seconds fall into it), read the series
   again (after), then reconcile both windows a second time.
5. Compare the ledger, the runs and the series with the truth.

The simulated day is the day before the newest settled day window, so both
windows can be reconciled at once. Push timestamps are therefore one to three
days old, which the demo's source accepts through a widened tolerance.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time as day_time, timedelta
from pathlib import Path
from typing import Any

from app.demo import report as checks
from app.demo.api import AdminClient
from app.demo.firehose import WriteSummary, write_log_stream
from app.demo.ledger import LedgerSnapshot, read_snapshot
from app.demo.pushes import NodeActionPusher, Pusher, PythonActionPusher, find_node, lost_push_targets
from app.demo.report import DemoReport
from app.demo.service import (
    KIND_METRICS,
    KINDS,
    LOGINS_METRIC,
    SOURCE,
    DemoCredentials,
    DemoPaths,
    running_service,
)
from app.demo.traffic import Traffic, generate_day
from app.reconciliation.windows import last_closed_window

# The reconciliation table's default settle lag, which the generated configuration keeps.
SETTLE_LAG = timedelta(hours=1)
Progress = Callable[[str], None]


class DemoSetupError(ValueError):
    """The demo cannot start with these options; the message names the option to change."""


@dataclass(frozen=True)
class DemoOptions:
    """Options of `hookledger demo`: the simulated day, the Action runtime and the data directory."""

    users: int = 300
    loss: float = 0.05
    seed: int = 1
    data_dir: Path | None = None
    day: date | None = None
    python_action: bool = False
    concurrency: int = 16


def default_day(now: datetime) -> date:
    """Return the day before the newest settled day window at `now`."""
    newest = last_closed_window(now, timedelta(days=1), SETTLE_LAG)
    return (newest.start - timedelta(days=1)).date()


def check_day(day: date, now: datetime) -> None:
    """Raise DemoSetupError unless both of the demo's windows are settled and its pushes are in tolerance."""
    latest = default_day(now)
    if day > latest:
        raise DemoSetupError(
            f"--day {day} is too recent: the day after it must be a settled window as well; use {latest} or earlier."
        )
    if day < latest - timedelta(days=4):
        raise DemoSetupError(
            f"--day {day} is too old: the service accepts push timestamps at most 7 days old; "
            f"use {latest - timedelta(days=4)} or later."
        )


def log_stream_for(traffic: Traffic) -> tuple[list[tuple[datetime, dict[str, Any]]], frozenset[str]]:
    """Return the (arrival, record) pairs to write and the log ids that the stream delivers twice."""
    return traffic.log_records, traffic.duplicates


@contextmanager
def data_directory(requested: Path | None) -> Iterator[Path]:
    """Yield the requested directory, which must hold no earlier run, or a temporary one removed afterwards."""
    if requested is None:
        with tempfile.TemporaryDirectory(prefix="hookledger-demo-") as temporary:
            yield Path(temporary)
        return
    paths = DemoPaths(requested)
    if paths.database.exists() or paths.logs.exists():
        raise DemoSetupError(
            f"--data-dir {requested} already contains a demo ledger or log directory; the truth check needs a fresh "
            "ledger, so pass an empty or new directory."
        )
    requested.mkdir(parents=True, exist_ok=True)
    yield requested


def choose_pusher(options: DemoOptions, warm_up_url: str) -> Pusher:
    """Return the Node pusher when Node and the Action's source are present, else the Python port."""
    node = None if options.python_action else find_node()
    if node is not None:
        pusher = NodeActionPusher(node, concurrency=options.concurrency, warm_up_url=warm_up_url)
        if pusher.action_path.is_file():
            return pusher
        fallback = PythonActionPusher(concurrency=options.concurrency)
        fallback.label = (
            f"Python port app/demo/action.py ({pusher.action_path} is not there: "
            "hookledger is installed without its source checkout)"
        )
        return fallback
    fallback = PythonActionPusher(concurrency=options.concurrency)
    if options.python_action:
        fallback.label = "Python port app/demo/action.py (chosen with --python-action)"
    return fallback


def run_demo(options: DemoOptions, *, progress: Progress = lambda line: None, now: datetime | None = None) -> DemoReport:
    """Run every step of the demo and return its report; raise DemoSetupError for unusable options."""
    if options.users < 1:
        raise DemoSetupError(f"--users must be at least 1, got {options.users}.")
    if not 0.0 <= options.loss <= 1.0:
        raise DemoSetupError(f"--loss must be between 0 and 1, got {options.loss}.")
    now = now or datetime.now(UTC)
    day = options.day or default_day(now)
    check_day(day, now)

    timings: dict[str, float] = {}
    started = time.monotonic()
    with data_directory(options.data_dir) as data_dir:
        paths = DemoPaths(data_dir)
        credentials = DemoCredentials.generate()
        step = time.monotonic()
        traffic = generate_day(day, options.users, options.seed, loss=options.loss)
        timings["generate"] = time.monotonic() - step
        progress(
            f"generated {len(traffic.logins)} post-login executions of {options.users} users on {day} "
            f"(seed {options.seed}, {options.loss:.0%} of pushes lost)"
        )
        step = time.monotonic()
        with running_service(paths, credentials) as base_url, AdminClient(base_url, credentials.admin_token) as client:
            timings["start_service"] = time.monotonic() - step
            progress(f"hookledger serve is ready at {base_url} (data in {data_dir})")
            report = _run_against_service(options, traffic, paths, credentials, base_url, client, timings, progress)
        report.settings["data_dir"] = str(data_dir) if options.data_dir else f"{data_dir} (temporary, removed)"
    timings["total"] = time.monotonic() - started
    report.timings = {name: round(seconds, 2) for name, seconds in timings.items()}
    return report


def _run_against_service(
    options: DemoOptions,
    traffic: Traffic,
    paths: DemoPaths,
    credentials: DemoCredentials,
    base_url: str,
    client: AdminClient,
    timings: dict[str, float],
    progress: Progress,
) -> DemoReport:
    day = traffic.day
    days = checks.window_days(day)
    first = datetime.combine(days[0], day_time(0), tzinfo=UTC)
    last_end = datetime.combine(days[-1], day_time(0), tzinfo=UTC) + timedelta(days=1)

    step = time.monotonic()
    pusher = choose_pusher(options, f"{base_url}/healthz")
    with lost_push_targets(f"{base_url}/v1/hooks/{SOURCE}") as targets:
        outcomes = pusher.push(traffic.logins, targets, credentials.secret)
    timings["push"] = time.monotonic() - step
    summary = checks.outcome_summary(outcomes)
    progress(f"ran the Action {len(outcomes)} times with {pusher.label}: {_join_counts(summary)}")

    step = time.monotonic()
    records, duplicates = log_stream_for(traffic)
    written = write_log_stream(records, paths.logs, tenant=traffic.tenant, duplicate_ids=duplicates, seed=options.seed)
    timings["write_logs"] = time.monotonic() - step
    progress(
        f"wrote {written.lines} log lines ({written.redeliveries} redelivered) in {len(written.files)} gzip files "
        f"under {paths.logs}"
    )

    metric_names = [LOGINS_METRIC, *KIND_METRICS.values()]
    before = {name: client.metric_series(name, first, last_end) for name in metric_names}

    step = time.monotonic()
    runs = [_reconcile(client, window_start, progress) for window_start in _window_starts(days)]
    timings["reconcile"] = time.monotonic() - step
    after = {name: client.metric_series(name, first, last_end) for name in metric_names}
    snapshot_after = read_snapshot(paths.database, SOURCE, KINDS)

    step = time.monotonic()
    reruns = [_reconcile(client, window_start, progress) for window_start in _window_starts(days)]
    timings["reconcile_again"] = time.monotonic() - step
    after_rerun = {name: client.metric_series(name, first, last_end) for name in metric_names}
    snapshot_rerun = read_snapshot(paths.database, SOURCE, KINDS)

    return _build_report(
        options, traffic, pusher, outcomes, written, runs, reruns,
        {"before": before, "after": after, "after_second_run": after_rerun},
        snapshot_after, snapshot_rerun,
    )


def _window_starts(days: list[date]) -> list[datetime]:
    return [datetime.combine(day, day_time(0), tzinfo=UTC) for day in days]


def _reconcile(client: AdminClient, start: datetime, progress: Progress) -> dict[str, Any]:
    end = start + timedelta(days=1)
    began = time.monotonic()
    run = client.wait_for_run(client.start_reconciliation(SOURCE, start, end))
    seconds = time.monotonic() - began
    run["demo_seconds"] = round(seconds, 2)
    progress(
        f"reconciliation run {run['id']} of [{start.date()}, {end.date()}) {run['status']} in {seconds:.1f} s: "
        f"{run['rows_scanned']} log records read, {run['gaps_filled']} gaps filled, "
        f"{run['rows_retracted']} retracted, {run['pushes_without_log']} pushes without a log record"
    )
    return run


def _join_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {label}" for label, count in counts.items())


def _build_report(
    options: DemoOptions,
    traffic: Traffic,
    pusher: Pusher,
    outcomes: list[Any],
    written: WriteSummary,
    runs: list[dict[str, Any]],
    reruns: list[dict[str, Any]],
    series: dict[str, dict[str, dict[str, Any]]],
    snapshot_after: LedgerSnapshot,
    snapshot_rerun: LedgerSnapshot,
) -> DemoReport:
    days = checks.window_days(traffic.day)
    truths = checks.kind_truth(traffic)
    found = []
    found += checks.push_checks(traffic, outcomes)
    found += checks.ledger_checks(traffic, truths, snapshot_after)
    found += checks.run_checks(truths, runs, reruns, snapshot_after, snapshot_rerun)

    metrics: dict[str, dict[str, Any]] = {}
    metric_kinds: dict[str, str | None] = {LOGINS_METRIC: None, **{name: kind for kind, name in KIND_METRICS.items()}}
    for name, kind in metric_kinds.items():
        expected_before = checks.before_truth(traffic, days, kind)
        expected_after = checks.daily_truth(traffic, days, kind)
        found += checks.series_checks("before reconciliation", name, series["before"][name], expected_before)
        found += checks.series_checks("after reconciliation", name, series["after"][name], expected_after)
        found += checks.series_checks("after the second runs", name, series["after_second_run"][name], expected_after)
        metrics[name] = {
            "kind": kind or "all",
            "days": {
                day.isoformat(): {
                    "before": checks.series_by_day(series["before"][name]).get(day),
                    "after": checks.series_by_day(series["after"][name]).get(day),
                    "after_second_run": checks.series_by_day(series["after_second_run"][name]).get(day),
                    "truth": expected_after[day],
                }
                for day in days
            },
        }

    kinds = {}
    for kind, truth in truths.items():
        kinds[kind] = {
            "executions": truth.executions,
            "pushed": truth.pushed,
            "lost": truth.lost,
            "lost_timeout": truth.lost_timeout,
            "lost_service_down": truth.lost_service_down,
            "abandoned_at_mfa": truth.abandoned_at_mfa,
            "filled_by_reconciliation": snapshot_after.by_origin_kind.get(("reconciliation", kind), 0),
            "fillable": truth.fillable,
            "pushed_without_log_twin": truth.pushed_without_log,
        }
    runner = "node" if isinstance(pusher, NodeActionPusher) else "python"
    return DemoReport(
        settings={
            "users": options.users,
            "loss": options.loss,
            "seed": options.seed,
            "day": traffic.day.isoformat(),
            "windows": [f"[{day.isoformat()}, {(day + timedelta(days=1)).isoformat()})" for day in days],
        },
        action={"runner": runner, "label": pusher.label},
        traffic={
            "executions": len(traffic.logins),
            "log_records": len(traffic.log_records),
            "log_lines": written.lines,
            "redelivered": written.redeliveries,
            "files": len(written.files),
            "lines_per_partition": {day.isoformat(): lines for day, lines in written.lines_per_partition.items()},
        },
        pushes={"outcomes": checks.outcome_summary(outcomes)},
        kinds=kinds,
        runs=[_run_summary(run) for run in runs],
        reruns=[_run_summary(run) for run in reruns],
        metrics=metrics,
        checks=found,
    )


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "window_start", "window_end", "status", "engine", "rows_scanned", "gaps_filled",
            "rows_retracted", "pushes_without_log", "error", "demo_seconds")
    return {key: run.get(key) for key in keys}
