"""Shared fixtures: databases on SQLite and PostgreSQL, and the application under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.migrate import upgrade
from tests.support.database import (
    create_postgres_database,
    drop_postgres_database,
    skip_or_fail_without_postgres,
    truncate_postgres,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session, dropped at the end."""
    admin_url = skip_or_fail_without_postgres()
    url = create_postgres_database(admin_url)
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(admin_url, url)


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    """A migrated SQLite file for one test."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_database_url")
    url = request.getfixturevalue("postgres_database_url")
    truncate_postgres(url)
    return url


@pytest.fixture
def data_dir() -> Path:
    return DATA
