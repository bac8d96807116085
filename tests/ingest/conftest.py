"""Fixtures for the hook route: a Standard Webhooks source named `acme`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.app import FakeClock, config_from, running_app
from tests.support.signing import SECRET

ENVIRON = {"ACME_SECRET": SECRET, "ACME_OLD_SECRET": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"}

ACME_SOURCE: dict[str, Any] = {
    "scheme": "standard-webhooks",
    "secrets_env": ["ACME_SECRET", "ACME_OLD_SECRET"],
    "subject_pointer": "/data/user_id",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(database_url: str, clock: FakeClock, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    config = config_from({"sources": {"acme": dict(ACME_SOURCE), "small": dict(ACME_SOURCE, max_body_bytes=64)}}, ENVIRON)
    async with running_app(database_url, config, clock=clock, data_dir=tmp_path) as http:
        yield http
