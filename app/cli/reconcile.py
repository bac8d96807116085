"""`hookledger reconcile`: reconcile settled windows of one source in this process."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.cli import app
from app.cli.serve import load_settings
from app.config import ConfigError, load_config
from app.db.engine import Database, create_engine
from app.db.errors import is_outage
from app.db.migrate import MigrationsNotFoundError, schema_state
from app.db.models import ReconciliationRun
from app.errors import HookledgerError
from app.reconciliation.config import ReconciliationConfig, parse_reconciliation_config
from app.reconciliation.schemas import RunOut
from app.reconciliation.service import Reconciler
from app.reconciliation.windows import Window, recent_windows
from app.settings import Settings
from app.state import utc_now

EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


class SchemaNotCurrentError(HookledgerError):
    code = "schema_outdated"


def _parse_instant(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-12-01T00:00:00Z.", param_hint=option) from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone; add Z for UTC.", param_hint=option)
    return parsed


@app.command("reconcile")
def reconcile_command(
    source: str = typer.Option(..., help="Configured source to reconcile, e.g. auth0."),
    start: str | None = typer.Option(None, help="Window start, ISO 8601 with a time zone; aligned to the window size."),
    end: str | None = typer.Option(None, help="Window end, ISO 8601 with a time zone; aligned to the window size."),
    last: int | None = typer.Option(
        None, min=1, max=400, help="Reconcile the N newest settled windows, oldest first (instead of --start/--end)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per run on stdout."),
) -> None:
    """Reconcile one window (default: the newest settled one) against HOOKLEDGER_DATABASE_URL; exit 1 if a run failed."""
    if last is not None and (start is not None or end is not None):
        typer.echo("error: use either --last or --start/--end, not both.", err=True)
        raise typer.Exit(EXIT_USAGE)
    window_start = _parse_instant("--start", start)
    window_end = _parse_instant("--end", end)
    settings = load_settings()
    try:
        config = load_config(settings.config)
        reconciliation = parse_reconciliation_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from exc

    show_progress = not json_output and sys.stdout.isatty()
    with _logs_to_stderr(settings.log_level):
        try:
            runs = asyncio.run(
                _reconcile(
                    settings,
                    reconciliation,
                    frozenset(config.sources),
                    source=source,
                    start=window_start,
                    end=window_end,
                    last=last,
                    show_progress=show_progress,
                )
            )
        except HookledgerError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(EXIT_USAGE) from exc
        except MigrationsNotFoundError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from exc
        except Exception as exc:
            if not is_outage(exc):
                raise
            typer.echo(
                f"error: cannot reach the database ({type(exc).__name__}: {exc}); check HOOKLEDGER_DATABASE_URL.",
                err=True,
            )
            raise typer.Exit(EXIT_RUN_FAILED) from exc

    for run, acquired in runs:
        if json_output:
            typer.echo(RunOut.model_validate(run).model_dump_json())
        else:
            typer.echo(_describe(run, acquired))
    if any(run.status == "failed" for run, _ in runs):
        raise typer.Exit(EXIT_RUN_FAILED)


async def _reconcile(
    settings: Settings,
    reconciliation: ReconciliationConfig,
    known_sources: frozenset[str],
    *,
    source: str,
    start: datetime | None,
    end: datetime | None,
    last: int | None,
    show_progress: bool,
) -> list[tuple[ReconciliationRun, bool]]:
    """Reconcile the requested windows one after another; return each run and whether this process ran it."""
    engine = create_engine(settings)
    database = Database(engine)
    try:
        reconciler = Reconciler(database, reconciliation, known_sources=known_sources, clock=utc_now)
        # The source and window are checked before the first database query, so a bad argument
        # fails with its own message even when the database is unreachable.
        settings_for_source = reconciler.settings_for(source)
        if last is not None:
            windows = recent_windows(utc_now(), settings_for_source.window, settings_for_source.settle_lag, last)
        else:
            windows = [reconciler.window_for(source, start, end)]
        schema = await schema_state(engine)
        if not schema.is_current:
            raise SchemaNotCurrentError(
                f"The database schema is at revision {schema.current or 'none'} and this version needs "
                f"{schema.head}; run 'hookledger migrate' first."
            )
        return await _run_windows(reconciler, source, windows, show_progress)
    finally:
        await database.dispose()


async def _run_windows(
    reconciler: Reconciler, source: str, windows: list[Window], show_progress: bool
) -> list[tuple[ReconciliationRun, bool]]:
    results = []
    with _progress(show_progress) as progress_for:
        for window in windows:
            claim = await reconciler.claim(source, window)
            if not claim.acquired:
                results.append((claim.run, False))
                continue
            run = await reconciler.execute(claim.run.id, progress=progress_for(f"{source} {window}"))
            results.append((run, True))
    return results


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], Callable[[int], None] | None]]:
    """Yield a function that returns a progress callback per window, or None when progress is off."""
    if not enabled:
        yield lambda label: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} log records"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=False) as progress:

        def callback_for(label: str) -> Callable[[int], None]:
            task = progress.add_task(label, total=None)
            return lambda scanned: progress.update(task, completed=scanned)

        yield callback_for


@contextmanager
def _logs_to_stderr(level: str) -> Iterator[None]:
    """Send structlog output to stderr while the command runs, so stdout carries only results."""
    saved = structlog.get_config()
    structlog.configure(
        logger_factory=lambda *args: structlog.PrintLogger(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


def _describe(run: ReconciliationRun, acquired: bool) -> str:
    window = f"[{run.window_start.isoformat()}, {run.window_end.isoformat()})"
    if not acquired:
        return f"run {run.id} {run.source} {window} is already running in {run.lease_owner}; nothing started."
    if run.status == "failed":
        return f"run {run.id} {run.source} {window} failed: {run.error}"
    return (
        f"run {run.id} {run.source} {window} {run.status}: {run.rows_scanned} log records read, "
        f"{run.gaps_filled} gaps filled, {run.rows_retracted} rows retracted, "
        f"{run.pushes_without_log} pushes without a log record"
    )
