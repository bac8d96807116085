"""`hookledger serve` and `hookledger migrate`."""

from __future__ import annotations

import asyncio

import typer
import uvicorn
from pydantic import ValidationError

from app.cli import app
from app.config import ConfigError, load_config
from app.db.engine import create_engine
from app.db.migrate import MigrationsNotFoundError, SchemaState, schema_state, upgrade
from app.db.errors import is_outage
from app.main import configure_extensions
from app.settings import Settings


def load_settings() -> Settings:
    """Read settings from the environment or exit with the validation message."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            variable = "HOOKLEDGER_" + "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"error: {variable} {message}", err=True)
        raise typer.Exit(2) from exc


async def _read_schema(settings: Settings) -> SchemaState:
    engine = create_engine(settings)
    try:
        return await schema_state(engine)
    finally:
        await engine.dispose()


def _check_schema(settings: Settings) -> SchemaState:
    try:
        return asyncio.run(_read_schema(settings))
    except MigrationsNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except Exception as exc:
        if not is_outage(exc):
            raise
        typer.echo(
            f"error: cannot reach the database at {_safe_url(settings)} ({type(exc).__name__}: {exc}); "
            "check HOOKLEDGER_DATABASE_URL and that the server is running.",
            err=True,
        )
        raise typer.Exit(1) from exc


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url()).render_as_string(hide_password=True)


@app.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations to HOOKLEDGER_DATABASE_URL (default: the SQLite file)."""
    settings = load_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    before = _check_schema(settings)
    if before.is_current:
        typer.echo(f"database at {_safe_url(settings)} is already at revision {before.head}")
        return
    try:
        upgrade(settings.resolved_database_url())
    except MigrationsNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"database at {_safe_url(settings)} migrated from {before.current or 'empty'} to {before.head}")


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 for every interface."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port to listen on."),
    workers: int = typer.Option(1, min=1, envvar="HOOKLEDGER_WORKERS", help="Worker processes."),
    proxy_headers: bool = typer.Option(
        False,
        envvar="HOOKLEDGER_PROXY_HEADERS",
        help="Trust X-Forwarded-Proto/For from --forwarded-allow-ips (behind a load balancer).",
    ),
    forwarded_allow_ips: str = typer.Option(
        "127.0.0.1",
        envvar="HOOKLEDGER_FORWARDED_ALLOW_IPS",
        help="Comma-separated proxy addresses or networks to trust, or '*' for any.",
    ),
    access_log: bool = typer.Option(False, help="Log one line per request from uvicorn."),
) -> None:
    """Run the HTTP service; on the embedded SQLite default, pending migrations are applied first."""
    settings = load_settings()
    try:
        config = load_config(settings.config)
        configure_extensions(config, settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not _check_schema(settings).is_current:
            upgrade(settings.resolved_database_url())
    else:
        schema = _check_schema(settings)
        if not schema.is_current:
            typer.echo(
                f"error: the database schema at {_safe_url(settings)} is at revision {schema.current or 'none'} "
                f"and this version needs {schema.head}; run 'hookledger migrate' first.",
                err=True,
            )
            raise typer.Exit(1)
    if not config.sources:
        typer.echo(
            "warning: no sources are configured, so every hook delivery gets 404; "
            "set HOOKLEDGER_CONFIG to a TOML file with [sources.NAME] tables.",
            err=True,
        )
    uvicorn.run(
        "app.main:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        access_log=access_log,
        log_config=None,
        server_header=False,
    )
