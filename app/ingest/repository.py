"""SQL for the events ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Event


@dataclass(frozen=True)
class StoredEvent:
    id: int
    body_sha256: str
    origin: str


class EventRepository:
    """Inserts and looks up ledger rows; inserts never overwrite an existing key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        if self.session.bind.dialect.name == "postgresql":
            return postgresql.insert(Event)
        return sqlite.insert(Event)

    async def insert_if_absent(self, values: dict[str, Any]) -> int | None:
        """Insert one event; return its id, or None when (source, idempotency_key) already exists."""
        statement = (
            self._insert()
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Event.source, Event.idempotency_key])
            .returning(Event.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def insert_many_if_absent(self, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Insert events of one source in one statement; return the ids of new rows by idempotency key."""
        if not rows:
            return {}
        statement = (
            self._insert()
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=[Event.source, Event.idempotency_key])
            .returning(Event.idempotency_key, Event.id)
        )
        result = await self.session.execute(statement)
        return {key: event_id for key, event_id in result.all()}

    async def get_by_key(self, source: str, idempotency_key: str) -> StoredEvent | None:
        """Return the stored event for (source, idempotency_key), if any."""
        statement = select(Event.id, Event.body_sha256, Event.origin).where(
            Event.source == source, Event.idempotency_key == idempotency_key
        )
        row = (await self.session.execute(statement)).one_or_none()
        return StoredEvent(id=row.id, body_sha256=row.body_sha256, origin=row.origin) if row else None
