"""`POST /v1/metric-events` on SQLite and PostgreSQL: per-item outcomes and batch limits."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db.models import Event
from app.ingest.extract import MAX_PAYLOAD_DEPTH
from tests.metrics.conftest import AUTH, RAW_CONFIG, ENVIRON, insert_rows, row
from tests.support.app import config_from, running_app


def event(key: str = "usage-1", **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "source": "billing",
        "idempotency_key": key,
        "event_type": "usage",
        "subject": "cust_1",
        "occurred_at": "2026-12-01T10:00:00+01:00",
        "payload": {"units": 3},
    }
    item.update(overrides)
    return item


async def post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/v1/metric-events", json=body, headers=AUTH)


async def stored(client: httpx.AsyncClient) -> list[Event]:
    database = client.app.state.hookledger.database  # type: ignore[attr-defined]
    async with database.transaction() as session:
        return list((await session.execute(select(Event).order_by(Event.id))).scalars())


async def test_single_event_accepted(client, clock):
    response = await post(client, event())

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    [result] = body["results"]
    assert result["index"] == 0
    assert result["status"] == "accepted"
    [row_] = await stored(client)
    assert row_.id == result["event_id"]
    assert row_.origin == "api"
    assert row_.source == "billing"
    assert row_.event_type == "usage"
    assert row_.subject == "cust_1"
    assert row_.occurred_at.isoformat() == "2026-12-01T09:00:00+00:00"
    assert row_.received_at == clock.now
    assert row_.payload == {"units": 3}
    assert len(row_.body_sha256) == 64


async def test_replay_is_duplicate(client):
    first = (await post(client, event())).json()["results"][0]
    # The same instant written with another offset is the same event.
    second = (await post(client, event(occurred_at="2026-12-01T09:00:00Z"))).json()["results"][0]

    assert second == {"index": 0, "status": "duplicate", "event_id": first["event_id"]}
    assert len(await stored(client)) == 1


async def test_same_key_other_body_is_conflict(client):
    first = (await post(client, event())).json()["results"][0]
    response = await post(client, event(payload={"units": 4}))

    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["status"] == "conflict"
    assert result["code"] == "idempotency_conflict"
    assert result["event_id"] == first["event_id"]
    assert "different body" in result["detail"]
    [row_] = await stored(client)
    assert row_.payload == {"units": 3}


async def test_batch_mixed_outcomes(client):
    await post(client, event("existing"))
    batch = {
        "events": [
            event("new-1"),
            event("existing"),
            event("existing", event_type="other"),
            event("bad-time", occurred_at="2026-12-01T10:00:00"),
            event("new-2", subject=None, source="acme"),
            "not an object",
            event("unknown-source", source="nobody"),
            event("new-1"),
        ]
    }
    response = await post(client, batch)

    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [result["status"] for result in body["results"]]
    assert statuses == ["accepted", "duplicate", "conflict", "invalid", "accepted", "invalid", "invalid", "duplicate"]
    assert [result["index"] for result in body["results"]] == list(range(8))
    assert (body["accepted"], body["duplicate"], body["conflict"], body["invalid"]) == (2, 2, 1, 3)
    assert body["results"][3]["code"] == "invalid_event"
    assert "occurred_at" in body["results"][3]["detail"]
    assert body["results"][6]["code"] == "unknown_source"
    keys = sorted(row_.idempotency_key for row_ in await stored(client))
    assert keys == ["existing", "new-1", "new-2"]


async def test_replay_of_reconciled_key_is_duplicate(client):
    await insert_rows(client, [row("usage-1", "2026-12-01T09:00:00+00:00", source="billing", origin="reconciliation")])
    result = (await post(client, event())).json()["results"][0]
    assert result["status"] == "duplicate"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"idempotency_key": "line\nbreak"}, "idempotency_key"),
        ({"event_type": ""}, "event_type"),
        ({"subject": "s" * 256}, "subject"),
        ({"occurred_at": 1764583200}, "occurred_at"),
        ({"payload": [1, 2]}, "payload"),
        ({"extra": 1}, "extra"),
        ({"payload": {"text": "nul\u0000"}}, "NUL"),
    ],
)
async def test_invalid_item_is_not_stored(client, overrides, field):
    result = (await post(client, event(**overrides))).json()["results"][0]
    assert result["status"] == "invalid"
    assert field in result["detail"]
    assert await stored(client) == []


async def test_missing_field_is_invalid(client):
    item = event()
    del item["idempotency_key"]
    result = (await post(client, item)).json()["results"][0]
    assert result["status"] == "invalid"
    assert "idempotency_key" in result["detail"]


async def test_batch_too_large(database_url, clock, tmp_path, monkeypatch):
    monkeypatch.setenv("HOOKLEDGER_MAX_METRIC_EVENTS_BATCH", "3")
    config = config_from(RAW_CONFIG, ENVIRON)
    async with running_app(database_url, config, clock=clock, data_dir=tmp_path, admin_token=AUTH["Authorization"][7:]) as client:
        allowed = await post(client, {"events": [event(f"k{n}") for n in range(3)]})
        rejected = await post(client, {"events": [event(f"x{n}") for n in range(4)]})

        assert allowed.status_code == 200
        assert rejected.status_code == 413
        problem = rejected.json()
        assert problem["code"] == "too_many_events"
        assert problem["limit"] == 3
        assert "4 events" in problem["detail"]
        assert len(await stored(client)) == 3


async def test_empty_batch_is_422(client):
    response = await post(client, {"events": []})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


async def test_malformed_json_is_400(client):
    response = await client.post("/v1/metric-events", content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_payload"


async def test_metric_events_need_write_scope(client):
    response = await client.post("/v1/metric-events", json=event())
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


async def test_api_events_count_in_series(client):
    await post(client, {"events": [event("a"), event("b", occurred_at="2026-12-02T00:00:00Z")]})
    response = await client.get(
        "/v1/metrics/usage",
        params={"start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z", "interval": "day"},
        headers=AUTH,
    )
    buckets = response.json()["buckets"]
    assert [(bucket["value"], bucket["api"], bucket["pushed"]) for bucket in buckets] == [(1, 1, 0), (1, 1, 0)]


def nested(levels: int) -> dict[str, Any]:
    """Return an object nested `levels` objects deep, counting the outermost one."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"child": value}
    return value


async def test_deeply_nested_payload_is_invalid(client):
    """900 levels pass orjson.loads but overflow orjson.dumps (254 levels); the item is rejected first."""
    batch = {"events": [event("deep", payload=nested(900)), event("flat")]}
    response = await client.post("/v1/metric-events", content=json.dumps(batch), headers=AUTH)

    assert response.status_code == 200, response.text
    deep, flat = response.json()["results"]
    assert deep["status"] == "invalid"
    assert deep["code"] == "invalid_event"
    assert "nested more than" in deep["detail"]
    assert flat["status"] == "accepted"
    assert [row_.idempotency_key for row_ in await stored(client)] == ["flat"]


async def test_payload_at_depth_limit_is_stored(client):
    # The item is level 1 and its payload level 2, so this payload reaches the maximum of 64 levels.
    result = (await post(client, event(payload=nested(MAX_PAYLOAD_DEPTH - 1)))).json()["results"][0]
    assert result["status"] == "accepted"


async def test_body_beyond_json_depth_is_400(client):
    body = b'{"events": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    response = await client.post("/v1/metric-events", content=body, headers=AUTH)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "malformed_payload"
    assert await stored(client) == []


@pytest.mark.parametrize(
    ("occurred_at", "fragment"),
    [
        ("0001-01-01T00:00:00+23:59", "out of range"),
        ("9999-12-31T23:59:59-23:59", "out of range"),
        ("0001-01-01T00:00:00Z", "implausible"),
        ("1969-12-31T23:59:59Z", "implausible"),
        ("2026-12-03T12:00:01Z", "implausible"),
    ],
    ids=["year-1-offset", "year-9999-offset", "year-1", "before-1970", "two-days-ahead"],
)
async def test_out_of_range_time_is_invalid(client, occurred_at, fragment):
    result = (await post(client, event(occurred_at=occurred_at))).json()["results"][0]

    assert result["status"] == "invalid"
    assert result["code"] == "invalid_event"
    assert "occurred_at" in result["detail"]
    assert fragment in result["detail"]
    assert "1970-01-01" in result["detail"]
    assert await stored(client) == []


async def test_time_one_day_ahead_is_accepted(client, clock):
    ahead = (clock.now + timedelta(days=1)).isoformat()
    result = (await post(client, event(occurred_at=ahead))).json()["results"][0]
    assert result["status"] == "accepted"


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_too_large_names_setting(database_url, clock, tmp_path, monkeypatch, streamed):
    monkeypatch.setenv("HOOKLEDGER_MAX_METRIC_EVENTS_BODY_BYTES", "1000")
    config = config_from(RAW_CONFIG, ENVIRON)
    body = json.dumps({"events": [event(f"k{n}") for n in range(20)]}).encode()
    assert len(body) > 1000

    async def chunks():
        for offset in range(0, len(body), 100):
            yield body[offset : offset + 100]

    async with running_app(database_url, config, clock=clock, data_dir=tmp_path, admin_token=AUTH["Authorization"][7:]) as client:
        content: Any = chunks() if streamed else body
        response = await client.post("/v1/metric-events", content=content, headers=AUTH)

        assert response.status_code == 413
        problem = response.json()
        assert problem["code"] == "payload_too_large"
        assert problem["limit"] == 1000
        assert "HOOKLEDGER_MAX_METRIC_EVENTS_BODY_BYTES" in problem["detail"]
        assert "max_body_bytes for the source" not in problem["detail"]
        assert await stored(client) == []


async def test_default_body_limit_names_setting(client):
    response = await client.post("/v1/metric-events", content=b" " * (9 * 1024 * 1024), headers=AUTH)
    assert response.status_code == 413
    assert "HOOKLEDGER_MAX_METRIC_EVENTS_BODY_BYTES" in response.json()["detail"]


async def test_unknown_query_parameter_is_422(client):
    response = await client.post("/v1/metric-events?dry_run=true", json=event(), headers=AUTH)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_parameter"
    assert problem["parameter"] == "dry_run"
    assert await stored(client) == []
