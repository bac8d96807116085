"""Error rendering: unexpected failures, disconnects, redirects and invalid JSON are all problems."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request
from structlog.testing import capture_logs

from app.errors import RequestTimeoutError
from app.ingest.body import read_capped_body
from tests.ingest.conftest import ACME_SOURCE, ENVIRON
from tests.support.asgi import http_post_scope
from tests.support.app import FakeClock, config_from, running_app
from tests.support.signing import SECRET, standard_webhooks_headers

ADMIN_TOKEN = "error-tests-" + "0" * 32


@pytest.fixture
async def client(sqlite_database_url, tmp_path):
    config = config_from({"sources": {"acme": dict(ACME_SOURCE)}}, ENVIRON)
    async with running_app(
        sqlite_database_url, config, clock=FakeClock(), data_dir=tmp_path, admin_token=ADMIN_TOKEN
    ) as http:
        yield http


def signed(body: bytes) -> dict[str, str]:
    return standard_webhooks_headers(SECRET, "msg_err", int(FakeClock().now.timestamp()), body)


async def test_unexpected_error_is_one_logged_problem(client, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("app.ingest.routes.parse_body", explode)
    body = json.dumps({"type": "t"}).encode()
    with capture_logs() as logs:
        response = await client.post("/v1/hooks/acme", content=body, headers=signed(body) | {"x-request-id": "r-1"})

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "internal_error"
    assert "boom" not in response.text
    assert response.headers["x-request-id"] == "r-1"
    errors = [entry for entry in logs if entry["event"] == "http.unhandled_error"]
    assert len(errors) == 1
    assert errors[0]["log_level"] == "error"


async def test_client_disconnect_logged_without_error(client):
    app = client.app  # type: ignore[attr-defined]
    messages: list[dict] = []
    scope = http_post_scope("/v1/hooks/acme", [(b"content-type", b"application/json"), (b"content-length", b"100")])
    incoming = [{"type": "http.request", "body": b'{"ty', "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)

    with capture_logs() as logs:
        await app(scope, receive, send)

    events = [entry["event"] for entry in logs]
    assert "http.client_disconnected" in events
    assert "http.unhandled_error" not in events


async def test_trailing_slash_is_not_redirected(client):
    response = await client.post("/v1/hooks/acme/", content=b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "location" not in response.headers


async def test_invalid_json_body_is_malformed_payload(client):
    response = await client.post(
        "/v1/reconciliations",
        content=b"{not json",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_payload"
    assert "not valid JSON" in response.json()["detail"]


async def test_invalid_utf8_hook_body_is_named(client):
    body = b'{"type": "\xff"}'
    response = await client.post("/v1/hooks/acme", content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_payload"
    assert "not valid UTF-8" in response.json()["detail"]


async def test_stalled_body_times_out():
    async def receive():
        await asyncio.sleep(3600)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"100")], "query_string": b""}
    request = Request(scope, receive)
    with pytest.raises(RequestTimeoutError) as caught:
        await read_capped_body(request, 1000, timeout=0.05)
    assert caught.value.status == 408
    assert caught.value.code == "body_timeout"


@pytest.mark.postgres
async def test_admin_routes_answer_503_when_database_is_down(postgres_database_url, tmp_path):
    from sqlalchemy.engine import make_url

    from tests.support.tcp_proxy import TcpProxy

    target = make_url(postgres_database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    raw = {
        "sources": {"acme": dict(ACME_SOURCE)},
        "metrics": {"acme_events": {"source": "acme", "event_types": ["t"]}},
    }
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with running_app(
            url, config_from(raw, ENVIRON), clock=FakeClock(), data_dir=tmp_path, admin_token=ADMIN_TOKEN
        ) as http:
            assert (await http.get("/v1/reconciliations", headers=auth)).status_code == 200
            await proxy.stop()
            for path in (
                "/v1/reconciliations",
                "/v1/reconciliations/1",
                "/v1/metrics/acme_events?start=2026-11-01T00:00:00Z&end=2026-11-02T00:00:00Z&interval=day",
            ):
                response = await http.get(path, headers=auth)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["code"] == "storage_unavailable"
                assert "retry-after" in response.headers
    finally:
        await proxy.stop()
