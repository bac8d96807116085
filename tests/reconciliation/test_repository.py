"""The ledger reads of a reconciliation run: pushed events with their hints."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from app.db.engine import Database
from app.db.models import Origin
from app.ingest.repository import EventRepository
from app.reconciliation.repository import LedgerRepository, PushedRow, sql_path
from tests.reconciliation.support import DAY, NEXT_DAY, at

PAYLOADS: list[dict[str, Any]] = [
    {"data": {"transaction_id": "tx-1", "session_id": "s-1", "client_id": "web", "ids": ["first"]}},
    {"data": {"transaction_id": "", "session_id": 7, "client_id": None, "ids": []}},
    {"data": {"transaction_id": {"nested": "x"}, "session_id": ["s"], "ids": "not a list"}},
    {"data": "not an object"},
    {"other": {"a/b": "slash", "t~n": "tilde", "ids": [True]}},
]


async def store(database: Database, payloads: list[dict[str, Any]]) -> None:
    async with database.transaction() as session:
        for index, payload in enumerate(payloads):
            raw = json.dumps(payload).encode()
            await EventRepository(session).insert_if_absent(
                {
                    "source": "auth0",
                    "idempotency_key": f"push-{index}",
                    "event_type": "login",
                    "subject": "auth0|alice",
                    "occurred_at": at(hours=1, seconds=index),
                    "received_at": at(hours=2),
                    "origin": Origin.PUSH,
                    "payload": payload,
                    "body_sha256": hashlib.sha256(raw).hexdigest(),
                }
            )


async def read_pushed(database: Database, pointers: dict[str, str | None]) -> list[PushedRow]:
    async with database.transaction() as session:
        return [
            row
            async for chunk in LedgerRepository(session).stream_pushed("auth0", DAY, NEXT_DAY, pointers)
            for row in chunk
        ]


def hints(rows: list[PushedRow]) -> list[tuple[str | None, str | None, str | None]]:
    return [(row.transaction_id, row.session_id, row.client_id) for row in rows]


class TestHintPointers:
    async def test_database_resolves_object_keys(self, database: Database):
        """Only non-empty JSON strings count; other values and missing paths give None."""
        await store(database, PAYLOADS)
        pointers = {"transaction_id": "/data/transaction_id", "session_id": "/data/session_id", "client_id": "/data/client_id"}

        rows = await read_pushed(database, pointers)

        assert hints(rows) == [
            ("tx-1", "s-1", "web"),
            (None, None, None),
            (None, None, None),
            (None, None, None),
            (None, None, None),
        ]

    async def test_indexes_and_escaped_keys(self, database: Database):
        """An array index is resolved from the payload in Python; escaped keys are resolved in SQL."""
        await store(database, PAYLOADS)
        pointers = {"transaction_id": "/data/ids/0", "session_id": "/other/a~1b", "client_id": "/other/t~0n"}

        rows = await read_pushed(database, pointers)

        assert sql_path("/other/a~1b") == ("other", "a/b")
        assert sql_path("/data/ids/0") is None
        assert hints(rows) == [
            ("first", None, None),
            (None, None, None),
            (None, None, None),
            (None, None, None),
            (None, "slash", "tilde"),
        ]

    async def test_no_pointers(self, database: Database):
        await store(database, PAYLOADS[:1])

        rows = await read_pushed(database, {"transaction_id": None, "session_id": None, "client_id": None})

        assert hints(rows) == [(None, None, None)]
        assert rows[0].idempotency_key == "push-0"


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/data/transaction_id", ("data", "transaction_id")),
        ("/data/0", None),
        ("/data/-1", None),
        ("/data/a.b", None),
        ('/data/a"b', None),
        ("/data/", None),
        ("", None),
    ],
)
def test_sql_path(pointer: str, expected: tuple[str, ...] | None):
    assert sql_path(pointer) == expected
