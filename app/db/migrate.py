"""Apply and inspect Alembic migrations from inside the process."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


class MigrationsNotFoundError(RuntimeError):
    """The Alembic scripts directory could not be located."""


def migrations_dir() -> Path:
    """Return the `migrations/` directory: `HOOKLEDGER_MIGRATIONS_DIR`, else beside the package."""
    configured = os.environ.get("HOOKLEDGER_MIGRATIONS_DIR")
    candidate = Path(configured) if configured else Path(__file__).resolve().parents[2] / "migrations"
    if not (candidate / "env.py").is_file():
        raise MigrationsNotFoundError(
            f"Alembic migrations not found at {candidate}; install hookledger from a source checkout "
            "(pip install -e .) or set HOOKLEDGER_MIGRATIONS_DIR to the project's migrations directory."
        )
    return candidate


def alembic_config(url: str) -> Config:
    """Build an Alembic configuration for `url` without an alembic.ini file."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`.

    The Alembic environment runs its own event loop, so inside a running loop
    the upgrade runs in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), revision)
        return
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(command.upgrade, alembic_config(url), revision).result()


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Return the database's revision and the newest revision in this code's migrations."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    head = script.get_current_head()
    async with engine.connect() as connection:
        current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    return SchemaState(current=current, head=head or "")
