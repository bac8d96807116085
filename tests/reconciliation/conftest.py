"""Fixtures for reconciliation tests: a migrated database and a reconciler with a fake engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from app.db.engine import Database, create_engine
from app.reconciliation.service import Reconciler
from app.settings import Settings
from tests.reconciliation.support import NOW, FakeEngine, reconciliation_config
from tests.support.app import FakeClock


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(create_engine(Settings(database_url=database_url, data_dir=tmp_path)))
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def make_reconciler(
    database: Database, clock: FakeClock, engine: FakeEngine, tmp_path: Path
) -> Callable[..., Reconciler]:
    """Build a reconciler of source `auth0` over the fake engine; keywords override table keys."""

    def build(*, query_engine: Any = None, owner: str | None = None, **table: Any) -> Reconciler:
        config = reconciliation_config(tmp_path / "logs", **table)
        return Reconciler(
            database,
            config,
            engine_factory=lambda settings: query_engine or engine,
            clock=clock,
            owner=owner,
        )

    return build


@pytest.fixture
def reconciler(make_reconciler: Callable[..., Reconciler]) -> Reconciler:
    return make_reconciler()
