"""The reconciliation routes over HTTP: trigger, list, read, errors, auth and Prometheus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.auth.dependencies import Principal
from app.reconciliation.runtime import runtime_of
from tests.ingest.test_hooks_http import assert_problem
from tests.reconciliation.support import DAY, NEXT_DAY, NOW, BlockingEngine, FakeEngine, at, log_record
from tests.support.app import FakeClock, config_from, running_app
from tests.support.signing import SECRET

TOKEN = "admin-token-for-tests-" + "0" * 16
ADMIN = {"authorization": f"Bearer {TOKEN}"}
READER = {"authorization": "Bearer reader-token"}


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    source = {"scheme": "standard-webhooks", "secrets_env": ["AUTH0_PUSH_SECRET"], "subject_pointer": "/data/user_id"}
    raw = {
        "sources": {
            "auth0": source | {"reconciliation": {"mapping": "auth0", "local_root": str(tmp_path / "logs")}},
            "acme": dict(source),
        }
    }
    config = config_from(raw, {"AUTH0_PUSH_SECRET": SECRET})
    async with running_app(database_url, config, clock=FakeClock(NOW), data_dir=tmp_path, admin_token=TOKEN) as http:
        state = http.app.state.hookledger  # type: ignore[attr-defined]

        async def reader(token: str, _state) -> Principal | None:
            return Principal("reader", frozenset({"metrics:read"}), "static") if token == "reader-token" else None

        state.extensions["app.auth.authenticators"].append(reader)
        runtime_of(state).reconciler.engines["auth0"] = FakeEngine([log_record("L1", "user_a", at(9))])
        yield http


async def finished(client: httpx.AsyncClient, run_id: int) -> dict:
    await runtime_of(client.app.state.hookledger).wait_idle()  # type: ignore[attr-defined]
    response = await client.get(f"/v1/reconciliations/{run_id}", headers=ADMIN)
    assert response.status_code == 200
    return response.json()


async def test_trigger_returns_202_and_runs_in_background(client):
    response = await client.post("/v1/reconciliations", json={"source": "auth0"}, headers=ADMIN)

    assert response.status_code == 202
    run = response.json()
    assert response.headers["location"] == f"/v1/reconciliations/{run['id']}"
    assert run["source"] == "auth0"
    assert run["status"] == "running"
    assert datetime.fromisoformat(run["window_start"]) == DAY
    assert datetime.fromisoformat(run["window_end"]) == NEXT_DAY
    done = await finished(client, run["id"])
    assert done["status"] == "succeeded"
    assert done["gaps_filled"] == 1
    assert done["rows_scanned"] == 1


async def test_trigger_with_explicit_window(client):
    body = {"source": "auth0", "start": "2026-11-30T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
    response = await client.post("/v1/reconciliations", json=body, headers=ADMIN)

    assert response.status_code == 202
    assert datetime.fromisoformat(response.json()["window_start"]) == DAY - timedelta(days=1)
    assert (await finished(client, response.json()["id"]))["gaps_filled"] == 0


async def test_second_trigger_while_running_returns_same_run(client):
    engine = BlockingEngine([log_record("L1", "user_a", at(9))])
    runtime_of(client.app.state.hookledger).reconciler.engines["auth0"] = engine  # type: ignore[attr-defined]
    responses = await asyncio.gather(
        *(client.post("/v1/reconciliations", json={"source": "auth0"}, headers=ADMIN) for _ in range(5))
    )
    assert await asyncio.to_thread(engine.started.wait, 30)
    later = await client.post("/v1/reconciliations", json={"source": "auth0"}, headers=ADMIN)
    engine.release.set()
    ids = {response.json()["id"] for response in [*responses, later]}

    assert [response.status_code for response in responses] == [202] * 5
    assert later.status_code == 202
    assert len(ids) == 1
    done = await finished(client, ids.pop())
    assert done["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"start": "2026-12-01T03:00:00Z"}, "not aligned"),
        ({"start": "2026-12-02T00:00:00Z"}, "not settled"),
        ({"start": "2026-11-29T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "one request per window"),
        ({"start": "2026-12-01T00:00:00Z", "end": "2026-11-30T00:00:00Z"}, "not before end"),
        ({"start": "2026-12-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "not before end"),
    ],
    ids=["unaligned", "not-closed", "too-long", "reversed", "empty"],
)
async def test_bad_window_is_422(client, body, reason):
    response = await client.post("/v1/reconciliations", json={"source": "auth0"} | body, headers=ADMIN)
    problem = assert_problem(response, 422, "invalid_window")
    assert reason in problem["detail"]


async def test_naive_time_is_422(client):
    body = {"source": "auth0", "start": "2026-11-30T00:00:00"}
    response = await client.post("/v1/reconciliations", json=body, headers=ADMIN)
    assert_problem(response, 422, "invalid_request")


async def test_unknown_source_is_404(client):
    response = await client.post("/v1/reconciliations", json={"source": "nobody"}, headers=ADMIN)
    problem = assert_problem(response, 404, "unknown_source")
    assert "nobody" in problem["detail"]


async def test_source_without_reconciliation_is_422(client):
    response = await client.post("/v1/reconciliations", json={"source": "acme"}, headers=ADMIN)
    problem = assert_problem(response, 422, "reconciliation_not_configured")
    assert "[sources.acme.reconciliation]" in problem["detail"]


async def test_missing_token_is_401(client):
    response = await client.post("/v1/reconciliations", json={"source": "auth0"})
    assert_problem(response, 401, "missing_token")
    listing = await client.get("/v1/reconciliations")
    assert_problem(listing, 401, "missing_token")


async def test_token_without_scope_is_403(client):
    response = await client.post("/v1/reconciliations", json={"source": "auth0"}, headers=READER)
    assert_problem(response, 403, "insufficient_scope")


async def test_listing_newest_first_with_filters(client):
    first = (await client.post("/v1/reconciliations", json={"source": "auth0"}, headers=ADMIN)).json()
    await finished(client, first["id"])
    runtime_of(client.app.state.hookledger).reconciler.engines["auth0"] = FakeEngine(  # type: ignore[attr-defined]
        error=RuntimeError("engine broke")
    )
    body = {"source": "auth0", "start": "2026-11-30T00:00:00Z"}
    second = (await client.post("/v1/reconciliations", json=body, headers=ADMIN)).json()
    await finished(client, second["id"])

    everything = (await client.get("/v1/reconciliations", headers=ADMIN)).json()["runs"]
    failed = (await client.get("/v1/reconciliations?status=failed", headers=ADMIN)).json()["runs"]
    limited = (await client.get("/v1/reconciliations?limit=1", headers=ADMIN)).json()["runs"]
    other = (await client.get("/v1/reconciliations?source=acme", headers=ADMIN)).json()["runs"]

    assert [run["id"] for run in everything] == [second["id"], first["id"]]
    assert [run["id"] for run in failed] == [second["id"]]
    assert "engine broke" in failed[0]["error"]
    assert [run["id"] for run in limited] == [second["id"]]
    assert other == []


async def test_bad_listing_parameters_are_422(client):
    assert_problem(await client.get("/v1/reconciliations?status=paused", headers=ADMIN), 422, "invalid_request")
    assert_problem(await client.get("/v1/reconciliations?limit=0", headers=ADMIN), 422, "invalid_request")


async def test_unknown_run_is_404(client):
    response = await client.get("/v1/reconciliations/999999", headers=ADMIN)
    assert_problem(response, 404, "run_not_found")


async def test_prometheus_shows_run_metrics(client):
    run = (await client.post("/v1/reconciliations", json={"source": "auth0"}, headers=ADMIN)).json()
    await finished(client, run["id"])

    text = (await client.get("/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    auth0 = (("source", "auth0"),)
    assert samples[("hookledger_reconciliation_runs_total", (("source", "auth0"), ("status", "succeeded")))] == 1
    assert samples[("hookledger_reconciliation_gaps_filled_total", auth0)] == 1
    assert samples[("hookledger_reconciliation_rows_retracted_total", auth0)] == 0
    assert samples[("hookledger_reconciliation_scanned_bytes_total", auth0)] == 1234
    assert samples[("hookledger_reconciliation_last_success_window_end_seconds", auth0)] == NEXT_DAY.timestamp()


async def runs_stored(client: httpx.AsyncClient) -> list[dict]:
    response = await client.get("/v1/reconciliations", headers=ADMIN)
    assert response.status_code == 200
    return response.json()["runs"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"start": "0001-01-01T00:00:00Z"}, "is before 2000-01-01T00:00:00Z"),
        ({"start": "0001-01-01T00:00:00+23:59"}, "is before 2000-01-01T00:00:00Z"),
        ({"end": "0001-01-01T00:00:00Z"}, "is before 2000-01-01T00:00:00Z"),
        ({"start": "9999-12-31T00:00:00Z"}, "is after now (2026-12-02T02:00:00Z)"),
        ({"end": "9999-12-31T23:59:59-23:59"}, "is after now"),
    ],
    ids=["year-1", "year-1-offset", "year-1-end", "year-9999", "year-9999-offset"],
)
async def test_window_outside_range_is_422_and_starts_nothing(client, body, fragment):
    response = await client.post("/v1/reconciliations", json={"source": "auth0"} | body, headers=ADMIN)

    problem = assert_problem(response, 422, "invalid_window")
    assert fragment in problem["detail"]
    assert "between 2000-01-01T00:00:00Z and now" in problem["detail"]
    assert await runs_stored(client) == []


async def test_unsettled_window_detail_shows_now(client):
    body = {"source": "auth0", "start": "2026-12-02T00:00:00Z"}
    problem = assert_problem(await client.post("/v1/reconciliations", json=body, headers=ADMIN), 422, "invalid_window")
    assert "Now is 2026-12-02T02:00:00Z" in problem["detail"]
    assert "latest end allowed is 2026-12-02T00:00:00Z" in problem["detail"]


async def test_unknown_listing_parameter_is_422(client):
    response = await client.get("/v1/reconciliations?limt=3", headers=ADMIN)

    problem = assert_problem(response, 422, "invalid_parameter")
    assert problem["parameter"] == "limt"
    assert problem["accepted"] == ["limit", "source", "status"]
    assert "did you mean 'limit'?" in problem["detail"]


async def test_repeated_listing_parameter_is_422(client):
    response = await client.get("/v1/reconciliations?status=failed&status=succeeded", headers=ADMIN)
    problem = assert_problem(response, 422, "invalid_parameter")
    assert problem["parameter"] == "status"


async def test_query_parameter_on_trigger_is_422(client):
    response = await client.post("/v1/reconciliations?source=auth0", json={"source": "auth0"}, headers=ADMIN)

    problem = assert_problem(response, 422, "invalid_parameter")
    assert "takes no query parameters" in problem["detail"]
    assert await runs_stored(client) == []


async def test_unknown_parameter_without_token_is_401(client):
    assert_problem(await client.get("/v1/reconciliations?limt=3"), 401, "missing_token")


@pytest.mark.parametrize(
    "run_id",
    ["abc", "1.5", "0", "-1", str(2**63), str(2**64), "9" * 40],
    ids=["word", "fraction", "zero", "negative", "int64-max-plus-1", "uint64", "40-digits"],
)
async def test_bad_run_id_is_422(client, run_id):
    problem = assert_problem(await client.get(f"/v1/reconciliations/{run_id}", headers=ADMIN), 422, "invalid_request")
    assert "run_id" in problem["detail"]


async def test_largest_run_id_is_404(client):
    response = await client.get(f"/v1/reconciliations/{2**63 - 1}", headers=ADMIN)
    assert_problem(response, 404, "run_not_found")


@pytest.mark.parametrize("limit", ["1" + "0" * 40, "501", "-5", "ten"])
async def test_extreme_listing_limit_is_422(client, limit):
    problem = assert_problem(await client.get(f"/v1/reconciliations?limit={limit}", headers=ADMIN), 422, "invalid_request")
    assert "limit" in problem["detail"]


@pytest.mark.parametrize("source", ["a%00b", "Auth0", "-auth0"], ids=["nul", "upper-case", "leading-dash"])
async def test_invalid_source_filter_is_422(client, source):
    problem = assert_problem(await client.get(f"/v1/reconciliations?source={source}", headers=ADMIN), 422, "invalid_parameter")
    assert problem["parameter"] == "source"
    assert "not a valid source name" in problem["detail"]
