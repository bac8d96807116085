"""A database that goes away yields 503 with Retry-After, and the service recovers by itself."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy.engine import make_url

from tests.ingest.conftest import ACME_SOURCE, ENVIRON
from tests.support.app import FakeClock, config_from, running_app
from tests.support.signing import SECRET, standard_webhooks_headers
from tests.support.tcp_proxy import TcpProxy


def delivery(clock: FakeClock, msg_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "invoice.paid", "data": {"user_id": "u1"}}).encode()
    return body, standard_webhooks_headers(SECRET, msg_id, int(clock.now.timestamp()), body)


def acme_config():
    return config_from({"sources": {"acme": dict(ACME_SOURCE)}}, ENVIRON)


@pytest.mark.postgres
async def test_postgres_outage_is_503_then_recovers(postgres_database_url, tmp_path):
    target = make_url(postgres_database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied_url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    clock = FakeClock()
    try:
        async with running_app(proxied_url, acme_config(), clock=clock, data_dir=tmp_path) as client:
            body, headers = delivery(clock, "before")
            assert (await client.post("/v1/hooks/acme", content=body, headers=headers)).status_code == 200

            await proxy.stop()
            body, headers = delivery(clock, "during")
            down = await client.post("/v1/hooks/acme", content=body, headers=headers)
            assert down.status_code == 503
            assert down.headers["content-type"].startswith("application/problem+json")
            assert down.json()["code"] == "storage_unavailable"
            assert down.headers["retry-after"] == "5"
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503

            await proxy.start()
            again = await client.post("/v1/hooks/acme", content=body, headers=headers)
            assert again.status_code == 200
            assert again.json()["status"] == "accepted"
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await proxy.stop()


async def test_sqlite_locked_is_503_then_recovers(sqlite_database_url, tmp_path):
    clock = FakeClock()
    path = make_url(sqlite_database_url).database
    async with running_app(
        sqlite_database_url, acme_config(), clock=clock, data_dir=tmp_path, sqlite_busy_timeout_ms=100
    ) as client:
        blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            body, headers = delivery(clock, "locked")
            locked = await client.post("/v1/hooks/acme", content=body, headers=headers)
            assert locked.status_code == 503
            assert locked.json()["code"] == "storage_unavailable"
            assert "retry-after" in locked.headers
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        recovered = await client.post("/v1/hooks/acme", content=body, headers=headers)
        assert recovered.status_code == 200
        assert recovered.json()["status"] == "accepted"
