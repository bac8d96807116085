"""The hook route over HTTP on SQLite and PostgreSQL: outcomes and every error code."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest
from sqlalchemy import func, select

from app.db.models import Event
from tests.support.asgi import http_post_scope
from tests.support.app import FakeClock
from tests.support.signing import SECRET, standard_webhooks_headers



def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def event_body(**overrides: object) -> bytes:
    body = {"type": "invoice.paid", "timestamp": "2026-12-01T11:59:00Z", "data": {"user_id": "user_1", "amount": 5}}
    body.update(overrides)
    return json.dumps(body).encode()


def signed(clock: FakeClock, body: bytes, msg_id: str = "msg_1", secret: str = SECRET) -> dict[str, str]:
    return standard_webhooks_headers(secret, msg_id, int(clock.now.timestamp()), body)


async def count_rows(client: httpx.AsyncClient) -> int:
    database = client.app.state.hookledger.database  # type: ignore[attr-defined]
    async with database.transaction() as session:
        return (await session.execute(select(func.count()).select_from(Event))).scalar_one()


async def stored_events(client: httpx.AsyncClient) -> list[Event]:
    database = client.app.state.hookledger.database  # type: ignore[attr-defined]
    async with database.transaction() as session:
        return list((await session.execute(select(Event).order_by(Event.id))).scalars())


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["detail"]
    return problem


async def test_accepted_stores_one_row(client, clock):
    body = event_body()
    response = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))

    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    rows = await stored_events(client)
    assert len(rows) == 1
    row = rows[0]
    assert row.id == response.json()["event_id"]
    assert row.source == "acme"
    assert row.idempotency_key == "msg_1"
    assert row.event_type == "invoice.paid"
    assert row.subject == "user_1"
    assert row.occurred_at.isoformat() == "2026-12-01T11:59:00+00:00"
    assert row.received_at == clock.now
    assert row.origin == "push"
    assert row.payload["data"]["amount"] == 5


async def test_duplicate_delivery_adds_nothing(client, clock):
    body = event_body()
    first = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))
    clock.advance(seconds=30)
    second = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))

    assert first.json()["status"] == "accepted"
    assert second.status_code == 200
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert await count_rows(client) == 1


async def test_same_key_other_body_is_conflict(client, clock):
    body = event_body()
    await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))
    changed = event_body(type="invoice.voided")
    response = await client.post("/v1/hooks/acme", content=changed, headers=signed(clock, changed))

    assert_problem(response, 409, "idempotency_conflict")
    rows = await stored_events(client)
    assert len(rows) == 1
    assert rows[0].event_type == "invoice.paid"


async def test_rotated_secret_verifies(client, clock):
    body = event_body()
    old = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    response = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body, secret=old))
    assert response.json()["status"] == "accepted"


async def test_occurred_at_falls_back_to_delivery_time(client, clock):
    body = json.dumps({"type": "ping", "data": {}}).encode()
    response = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body, "msg_ping"))
    assert response.status_code == 200
    rows = await stored_events(client)
    assert rows[0].occurred_at == clock.now
    assert rows[0].subject is None


async def test_unknown_source_is_404(client, clock):
    body = event_body()
    response = await client.post("/v1/hooks/nobody", content=body, headers=signed(clock, body))
    problem = assert_problem(response, 404, "unknown_source")
    assert "nobody" in problem["detail"]


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_missing_header_is_400(client, clock, header):
    body = event_body()
    headers = signed(clock, body)
    del headers[header]
    response = await client.post("/v1/hooks/acme", content=body, headers=headers)
    problem = assert_problem(response, 400, "missing_header")
    assert header in problem["detail"]
    assert await count_rows(client) == 0


async def test_tampered_body_is_invalid_signature(client, clock):
    body = event_body()
    headers = signed(clock, body)
    response = await client.post("/v1/hooks/acme", content=event_body(data={"user_id": "evil"}), headers=headers)
    assert_problem(response, 401, "invalid_signature")
    assert await count_rows(client) == 0


async def test_old_timestamp_is_out_of_tolerance(client, clock):
    body = event_body()
    headers = signed(clock, body)
    clock.advance(seconds=301)
    response = await client.post("/v1/hooks/acme", content=body, headers=headers)
    assert_problem(response, 401, "timestamp_out_of_tolerance")
    assert await count_rows(client) == 0


async def test_body_over_cap_is_413_and_stores_nothing(client, clock):
    body = event_body(padding="x" * 100)
    response = await client.post("/v1/hooks/small", content=body, headers=signed(clock, body))
    problem = assert_problem(response, 413, "payload_too_large")
    assert "64 bytes" in problem["detail"]
    assert await count_rows(client) == 0


async def test_body_over_cap_without_content_length(client, clock):
    body = event_body(padding="x" * 100)

    async def chunks():
        for start in range(0, len(body), 16):
            yield body[start : start + 16]

    response = await client.post("/v1/hooks/small", content=chunks(), headers=signed(clock, body))
    assert_problem(response, 413, "payload_too_large")
    assert await count_rows(client) == 0


async def test_body_not_json_is_malformed_payload(client, clock):
    body = b"not json at all"
    response = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))
    assert_problem(response, 400, "malformed_payload")
    assert await count_rows(client) == 0


async def test_missing_event_type_is_invalid_event(client, clock):
    body = json.dumps({"data": {"user_id": "u"}}).encode()
    response = await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))
    problem = assert_problem(response, 422, "invalid_event")
    assert "/type" in problem["detail"]
    assert await count_rows(client) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"type": 5},
        {"type": "t", "timestamp": "yesterday"},
        {"type": "t", "timestamp": "2026-12-01T10:00:00"},
        {"type": "t", "data": {"user_id": {"nested": True}}},
        {"type": "t", "data": {"user_id": "nul\u0000byte"}},
        {"type": "x" * 300},
        {"type": "t", "timestamp": "0001-01-01T00:00:00+01:00"},
        {"type": "t", "timestamp": "9999-12-31T23:59:59-01:00"},
        {"type": "t", "timestamp": -1e12},
        {"type": "t", "timestamp": "1938-04-24T00:00:00Z"},
        {"type": "t", "timestamp": "2026-12-03T12:00:01Z"},
        {"type": "t", "timestamp": 99999999999999},
        {"type": "t", "data": {"deep": nested(65)}},
        {"type": "t", "data": {"deep": nested(300)}},
        {"type": "t", "data": {"deep": nested(900)}},
    ],
    ids=[
        "type-not-string",
        "timestamp-text",
        "timestamp-naive",
        "subject-object",
        "nul-character",
        "type-too-long",
        "timestamp-year-1-offset",
        "timestamp-year-9999-offset",
        "timestamp-negative-millis",
        "timestamp-before-1970",
        "timestamp-over-a-day-ahead",
        "timestamp-far-future-millis",
        "nesting-65",
        "nesting-300",
        "nesting-900",
    ],
)
async def test_invalid_fields_are_422(client, clock, body):
    raw = json.dumps(body).encode()
    response = await client.post("/v1/hooks/acme", content=raw, headers=signed(clock, raw))
    assert_problem(response, 422, "invalid_event")
    assert await count_rows(client) == 0


async def test_gzip_rejected_unless_enabled(client, clock):
    body = event_body()
    headers = signed(clock, body) | {"content-encoding": "gzip"}
    response = await client.post("/v1/hooks/acme", content=gzip.compress(body), headers=headers)
    assert_problem(response, 415, "unsupported_content_encoding")


async def test_unknown_route_and_method_are_problems(client):
    missing = await client.get("/v1/nothing-here")
    assert_problem(missing, 404, "not_found")
    wrong_method = await client.get("/v1/hooks/acme")
    assert_problem(wrong_method, 405, "method_not_allowed")


async def test_concurrent_deliveries_of_one_key_store_one_row(client, clock):
    body = event_body()
    headers = signed(clock, body, "msg_concurrent")
    responses = await asyncio.gather(
        *(client.post("/v1/hooks/acme", content=body, headers=headers) for _ in range(50))
    )

    statuses = [response.status_code for response in responses]
    assert statuses == [200] * 50
    outcomes = sorted(response.json()["status"] for response in responses)
    assert outcomes.count("accepted") == 1
    assert outcomes.count("duplicate") == 49
    assert len({response.json()["event_id"] for response in responses}) == 1
    assert await count_rows(client) == 1


async def test_request_id_is_echoed(client, clock):
    body = event_body()
    response = await client.post(
        "/v1/hooks/acme", content=body, headers=signed(clock, body) | {"x-request-id": "req-123"}
    )
    assert response.headers["x-request-id"] == "req-123"


async def test_prometheus_counts_outcomes(client, clock):
    body = event_body()
    await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))
    await client.post("/v1/hooks/acme", content=body, headers=signed(clock, body))
    await client.post("/v1/hooks/ghost", content=body, headers=signed(clock, body))
    text = (await client.get("/metrics")).text
    assert 'hookledger_deliveries_total{outcome="accepted",source="acme"} 1.0' in text
    assert 'hookledger_deliveries_total{outcome="duplicate",source="acme"} 1.0' in text
    assert 'hookledger_deliveries_total{outcome="unknown_source",source="unknown"} 1.0' in text
    assert "ghost" not in text
    assert "hookledger_delivery_seconds_bucket" in text


async def test_health_and_readiness(client):
    health = await client.get("/healthz")
    assert health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_nesting_at_limit_is_stored(client, clock):
    raw = json.dumps({"type": "t", "data": {"deep": nested(60)}}).encode()
    response = await client.post("/v1/hooks/acme", content=raw, headers=signed(clock, raw))
    assert response.status_code == 200, response.text
    assert await count_rows(client) == 1


async def test_event_time_within_a_day_ahead_is_accepted(client, clock):
    raw = json.dumps({"type": "t", "timestamp": "2026-12-02T11:59:00Z"}).encode()
    response = await client.post("/v1/hooks/acme", content=raw, headers=signed(clock, raw))
    assert response.status_code == 200, response.text


async def test_implausible_time_detail_names_the_range(client, clock):
    raw = json.dumps({"type": "t", "timestamp": "1938-04-24T00:00:00Z"}).encode()
    response = await client.post("/v1/hooks/acme", content=raw, headers=signed(clock, raw))
    problem = assert_problem(response, 422, "invalid_event")
    assert "1970-01-01" in problem["detail"]
    assert "milliseconds" in problem["detail"]


async def test_repeated_signature_header_is_rejected(client, clock):
    body = event_body()
    headers = signed(clock, body)
    raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]
    raw_headers.append((b"webhook-signature", b"v1,AAAA"))
    response = await client.post("/v1/hooks/acme", content=body, headers=raw_headers)
    problem = assert_problem(response, 400, "malformed_header")
    assert "webhook-signature appears more than once" in problem["detail"]
    assert await count_rows(client) == 0


async def test_repeated_unrelated_header_is_accepted(client, clock):
    body = event_body()
    raw_headers = [(name.encode(), value.encode()) for name, value in signed(clock, body).items()]
    raw_headers += [(b"x-forwarded-for", b"203.0.113.1"), (b"x-forwarded-for", b"198.51.100.2")]
    response = await client.post("/v1/hooks/acme", content=body, headers=raw_headers)
    assert response.status_code == 200, response.text


async def test_unknown_source_lists_configured_ones(client, clock):
    response = await client.post("/v1/hooks/nobody", content=b"{}")
    problem = assert_problem(response, 404, "unknown_source")
    assert "configured sources: acme, small" in problem["detail"]
    assert "[sources.nobody]" in problem["detail"]

    invalid = await client.post("/v1/hooks/STRIPE", content=b"{}")
    problem = assert_problem(invalid, 404, "unknown_source")
    assert "not a valid source name" in problem["detail"]
    assert "[sources.STRIPE]" not in problem["detail"]


async def test_stalled_body_gets_408_and_frees_its_place(database_url, clock, tmp_path):
    from tests.ingest.conftest import ACME_SOURCE, ENVIRON
    from tests.support.app import config_from, running_app

    config = config_from({"sources": {"acme": dict(ACME_SOURCE)}}, ENVIRON)
    async with running_app(database_url, config, clock=clock, data_dir=tmp_path, body_timeout_seconds=0.2) as http:
        app = http.app  # type: ignore[attr-defined]
        sent: list[dict] = []
        scope = http_post_scope("/v1/hooks/acme", [(b"content-type", b"application/json"), (b"content-length", b"1000")])
        chunks = [{"type": "http.request", "body": b'{"type": "t"', "more_body": True}]

        async def receive():
            if chunks:
                return chunks.pop(0)
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        await asyncio.wait_for(app(scope, receive, send), timeout=5)

        start = next(message for message in sent if message["type"] == "http.response.start")
        assert start["status"] == 408
        body = json.loads(b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body"))
        assert body["code"] == "body_timeout"
        batcher = app.state.hookledger.extensions["app.ingest.batcher"]
        assert batcher._admitted == 0
        assert await count_rows(http) == 0
