"""SQL for the events ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db.engine import dump_json
from app.db.models import Event


@dataclass(frozen=True)
class StoredEvent:
    id: int
    body_sha256: str
    origin: str


# One statement text for every batch size: asyncpg prepares it once per connection, where a
# multi-row VALUES list would be compiled by SQLAlchemy and prepared again for each new size.
POSTGRES_INSERT_BATCH = text(
    """
    INSERT INTO events (source, idempotency_key, event_type, subject, occurred_at, received_at,
                        origin, payload, body_sha256)
    SELECT source, idempotency_key, event_type, subject, occurred_at, received_at,
           origin, payload::jsonb, body_sha256
    FROM unnest(CAST(:sources AS text[]), CAST(:keys AS text[]), CAST(:event_types AS text[]),
                CAST(:subjects AS text[]), CAST(:occurred_at AS timestamptz[]),
                CAST(:received_at AS timestamptz[]), CAST(:origins AS text[]), CAST(:payloads AS text[]),
                CAST(:body_hashes AS text[]))
         AS batch(source, idempotency_key, event_type, subject, occurred_at, received_at,
                  origin, payload, body_sha256)
    ON CONFLICT (source, idempotency_key) DO NOTHING
    RETURNING source, idempotency_key, id
    """
)


class EventRepository:
    """Inserts and looks up ledger rows; inserts never overwrite an existing key.

    It runs on a session, whose transaction the caller commits, or on a
    connection; an `AUTOCOMMIT` connection makes each statement a transaction
    of its own.
    """

    def __init__(self, session: AsyncSession | AsyncConnection) -> None:
        self.session = session
        if isinstance(session, AsyncConnection):
            self.dialect = session.dialect.name
        else:
            self.dialect = session.bind.dialect.name

    def _insert(self) -> Any:
        if self.dialect == "postgresql":
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

    async def insert_batch_if_absent(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
        """Insert rows with distinct (source, idempotency_key); return the ids of new rows by that pair.

        PostgreSQL gets one `unnest` statement for the whole batch; other
        databases get one multi-row insert per source.
        """
        if not rows:
            return {}
        if self.dialect != "postgresql":
            inserted: dict[tuple[str, str], int] = {}
            for source in {row["source"] for row in rows}:
                ids = await self.insert_many_if_absent([row for row in rows if row["source"] == source])
                inserted.update({(source, key): event_id for key, event_id in ids.items()})
            return inserted
        parameters = {
            "sources": [row["source"] for row in rows],
            "keys": [row["idempotency_key"] for row in rows],
            "event_types": [row["event_type"] for row in rows],
            "subjects": [row["subject"] for row in rows],
            "occurred_at": [row["occurred_at"] for row in rows],
            "received_at": [row["received_at"] for row in rows],
            "origins": [row["origin"] for row in rows],
            "payloads": [dump_json(row["payload"]) for row in rows],
            "body_hashes": [row["body_sha256"] for row in rows],
        }
        result = await self.session.execute(POSTGRES_INSERT_BATCH, parameters)
        return {(source, key): event_id for source, key, event_id in result.all()}

    async def get_by_key(self, source: str, idempotency_key: str) -> StoredEvent | None:
        """Return the stored event for (source, idempotency_key), if any."""
        statement = select(Event.id, Event.body_sha256, Event.origin).where(
            Event.source == source, Event.idempotency_key == idempotency_key
        )
        row = (await self.session.execute(statement)).one_or_none()
        return StoredEvent(id=row.id, body_sha256=row.body_sha256, origin=row.origin) if row else None

    async def get_many_by_keys(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], StoredEvent]:
        """Return the stored events for (source, idempotency_key) pairs; absent pairs are left out."""
        if not keys:
            return {}
        statement = select(Event.source, Event.idempotency_key, Event.id, Event.body_sha256, Event.origin).where(
            tuple_(Event.source, Event.idempotency_key).in_(list(keys))
        )
        rows = (await self.session.execute(statement)).all()
        return {
            (row.source, row.idempotency_key): StoredEvent(id=row.id, body_sha256=row.body_sha256, origin=row.origin)
            for row in rows
        }
