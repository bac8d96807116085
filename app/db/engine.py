"""Engine and session factory, built in the application lifespan."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.settings import Settings


def dump_json(value: Any) -> str:
    """Serialize a JSON column value with orjson.

    orjson rejects integers outside the signed and unsigned 64-bit range and
    dict keys that are not strings. Such values fall back to the standard
    library, which writes them as it did before. A value that is not JSON at
    all (a set, an object) raises TypeError from both.
    """
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def load_json(text: str | bytes) -> Any:
    """Parse a JSON column value with orjson.

    NOTE: orjson reads an integer outside the 64-bit range as a float, so a
    stored value with such an integer comes back with less precision.
    """
    return orjson.loads(text)


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """Create the async engine for `url` (default: the settings' database URL)."""
    url = url or settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            pool_pre_ping=True,
            json_serializer=dump_json,
            json_deserializer=load_json,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        connect_args = {
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": 30,
            "server_settings": {"application_name": "hookledger", "timezone": "UTC"},
        }
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args=connect_args,
        # asyncpg's dialect passes the serializer's text to its jsonb codec and the
        # deserializer to its json and jsonb decoders (SQLAlchemy 2.1).
        json_serializer=dump_json,
        json_deserializer=load_json,
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Turn on WAL, foreign keys and a busy timeout for every SQLite connection."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()


class Database:
    """The engine and its session factory; one per application."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Yield a session whose transaction commits on success and rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
