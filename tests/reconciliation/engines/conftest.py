"""Fixtures for the log query engine tests; the builders live in `log_fixtures`."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.reconciliation.mappings import LogMapping, builtin_mappings
from tests.reconciliation.engines.log_fixtures import LogTree, build_auth0_window


@pytest.fixture
def log_tree(tmp_path: Path) -> LogTree:
    return LogTree(tmp_path / "logs")


@pytest.fixture
def auth0_mapping(log_tree: LogTree) -> LogMapping:
    return builtin_mappings()["auth0"].model_copy(update={"local_root": log_tree.root})


@pytest.fixture
def auth0_window_tree(log_tree: LogTree) -> LogTree:
    return build_auth0_window(log_tree)
