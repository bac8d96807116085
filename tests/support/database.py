"""Test databases: a fresh SQLite file per test, and one PostgreSQL database per session.

PostgreSQL tests use `HOOKLEDGER_TEST_POSTGRES_URL` (default: the local server
at 127.0.0.1:5432 as user postgres). Where no server responds they are skipped,
unless `HOOKLEDGER_REQUIRE_POSTGRES=1` (set by .ci/run), which makes them fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("HOOKLEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_required() -> bool:
    return os.environ.get("HOOKLEDGER_REQUIRE_POSTGRES", "") not in {"", "0", "false"}


def run_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, factory()).result()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _probe(url: str) -> str | None:
    try:
        connection = await asyncpg.connect(_dsn(url), timeout=3)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


def skip_or_fail_without_postgres() -> str:
    """Return the admin URL, or skip (fail under HOOKLEDGER_REQUIRE_POSTGRES) when unreachable."""
    url = postgres_admin_url()
    problem = run_blocking(lambda: _probe(url))
    if problem is not None:
        message = (
            f"PostgreSQL is not reachable at {make_url(url).render_as_string(hide_password=True)} ({problem}); "
            "start it or set HOOKLEDGER_TEST_POSTGRES_URL"
        )
        if postgres_required():
            pytest.fail(message + " (HOOKLEDGER_REQUIRE_POSTGRES is set, so this is an error)", pytrace=False)
        pytest.skip(message)
    return url


def create_postgres_database(admin_url: str) -> str:
    """Create a uniquely named database and return its SQLAlchemy URL."""
    name = f"hookledger_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        connection = await asyncpg.connect(_dsn(admin_url), timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    run_blocking(create)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, url: str) -> None:
    name = make_url(url).database

    async def drop() -> None:
        connection = await asyncpg.connect(_dsn(admin_url), timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    run_blocking(drop)


def truncate_postgres(url: str) -> None:
    """Empty every ledger table between tests that share the session database."""
    run_blocking(lambda: _truncate(url))


async def _truncate(url: str) -> None:
    connection = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()
