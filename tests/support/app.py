"""Run the application in-process for HTTP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.config import AppConfig, parse_config
from app.main import create_app
from app.settings import Settings


class FakeClock:
    """A settable clock for the application under test."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def config_from(raw: dict[str, Any], environ: dict[str, str]) -> AppConfig:
    return parse_config(raw, environ)


@asynccontextmanager
async def running_app(
    database_url: str,
    config: AppConfig,
    *,
    clock: FakeClock | None = None,
    data_dir: Any = None,
    **settings: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan and yield an HTTP client bound to it."""
    app_settings = Settings(database_url=database_url, data_dir=data_dir or ".", **settings)
    app = create_app(app_settings, config, clock=clock or FakeClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
