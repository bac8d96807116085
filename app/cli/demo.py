"""`hookledger demo`: one simulated Auth0 day through the real service, checked against its truth.

Exit status: 0 when every count equals the truth, 1 when a count differs
(the report's `DIFFERS:` lines name it), 2 when the demo could not run.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path

import typer

from app.cli import app as cli
from app.demo.api import DemoApiError
from app.demo.pushes import ActionDriverError
from app.demo.report import render_text
from app.demo.runner import DemoOptions, DemoSetupError, run_demo
from app.demo.service import ServiceStartError


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date; write it as YYYY-MM-DD.") from exc


@cli.command("demo")
def demo_command(
    users: int = typer.Option(300, "--users", min=1, help="Number of simulated Auth0 users."),
    loss: float = typer.Option(0.05, "--loss", min=0.0, max=1.0, help="Share of pushes lost, 0 to 1."),
    seed: int = typer.Option(1, "--seed", help="Seed of the traffic generator; the same seed gives the same day."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Keep the ledger, logs and configuration here (default: a temporary directory)."
    ),
    day: str | None = typer.Option(
        None, "--day", help="UTC day to simulate, YYYY-MM-DD (default: two days ago, three before 01:00 UTC, so that it and the next day are settled windows)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
    python_action: bool = typer.Option(
        False, "--python-action", help="Push with the Python port of the Action even when Node.js is installed."
    ),
    concurrency: int = typer.Option(16, "--concurrency", min=1, max=256, help="Action executions in flight at once."),
) -> None:
    """Simulate a day of Auth0 logins, push, lose, log and reconcile them, and check every count."""
    options = DemoOptions(
        users=users,
        loss=loss,
        seed=seed,
        data_dir=data_dir,
        day=_parse_day(day),
        python_action=python_action,
        concurrency=concurrency,
    )

    def progress(line: str) -> None:
        print(f"{datetime.now().strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    try:
        report = run_demo(options, progress=progress)
    except DemoSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (ServiceStartError, DemoApiError, ActionDriverError) as exc:
        typer.echo(f"error: the demo could not finish: {exc}", err=True)
        raise typer.Exit(2) from exc

    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=None, sort_keys=False))
    else:
        typer.echo(render_text(report))
    if not report.ok:
        if as_json:
            for check in report.differences:
                typer.echo(f"DIFFERS: {check.describe()}", err=True)
        raise typer.Exit(1)
