"""Translate database outages into `StorageUnavailableError` (HTTP 503 with Retry-After)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import exc as sa_exc

from app.errors import StorageUnavailableError

log = structlog.get_logger("app.db")

# Raised by drivers before SQLAlchemy can wrap them (connection refused, DNS, timeouts).
_RAW_OUTAGE_ERRORS = (OSError, asyncio.TimeoutError, ConnectionError)


def is_outage(exc: BaseException) -> bool:
    """Return True for errors that mean the database is down, unreachable, locked or restarting."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # asyncpg reports a server shutting down or a dropped connection with these SQLSTATE classes:
        # 08 connection exception, 53 insufficient resources, 57 operator intervention.
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in {"08", "53", "57"}:
            return True
    return isinstance(exc, _RAW_OUTAGE_ERRORS)


@asynccontextmanager
async def storage_errors(retry_after_seconds: int, **context: object) -> AsyncIterator[None]:
    """Map database outages inside the block to a 503 whose Retry-After sets when the sender retries."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning("db.unavailable", error=f"{type(exc).__name__}: {exc}"[:500], **context)
        raise StorageUnavailableError(
            f"The database is unavailable ({type(exc).__name__}); nothing was stored. "
            f"Retry after {retry_after_seconds} seconds.",
            headers={"Retry-After": str(retry_after_seconds)},
        ) from exc
