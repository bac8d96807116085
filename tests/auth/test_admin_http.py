"""Admin authentication over HTTP: static TOML tokens, Auth0 JWTs, 401/403 responses and counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.auth import VERIFIER_KEY
from tests.auth.conftest import AUDIENCE, ISSUER, FakeIssuer
from tests.support.app import FakeClock, config_from, running_app

READ_TOKEN = "r" * 40
WRITE_TOKEN = "w" * 40
WINDOW = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "interval": "day"}
RAW_CONFIG = {
    "metrics_api": {"sources": ["billing"]},
    "metrics": {"usage": {"source": "billing", "event_types": ["usage"]}},
    "auth": {
        "issuer": ISSUER.rstrip("/"),
        "audience": AUDIENCE,
        "tokens": {
            "reader": {"token_env": "TEST_READ_TOKEN", "scopes": ["metrics:read"]},
            "writer": {"token_env": "TEST_WRITE_TOKEN", "scopes": ["metrics:write"]},
        },
    },
}
EVENT = {
    "source": "billing",
    "idempotency_key": "k1",
    "event_type": "usage",
    "occurred_at": "2026-12-01T10:00:00Z",
}


@pytest.fixture
async def client(
    sqlite_database_url: str, clock: FakeClock, issuer: FakeIssuer, tmp_path, monkeypatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TEST_READ_TOKEN", READ_TOKEN)
    monkeypatch.setenv("TEST_WRITE_TOKEN", WRITE_TOKEN)
    config = config_from(RAW_CONFIG, {})
    async with running_app(sqlite_database_url, config, clock=clock, data_dir=tmp_path) as http:
        verifier = http.app.state.hookledger.extensions[VERIFIER_KEY]  # type: ignore[attr-defined]
        await verifier.jwks.client.aclose()
        verifier.jwks.client = issuer.client()
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_series(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/v1/metrics/usage", params=WINDOW, headers=bearer(token))


async def test_static_read_token(client):
    assert (await read_series(client, READ_TOKEN)).status_code == 200
    response = await client.post("/v1/metric-events", json=EVENT, headers=bearer(READ_TOKEN))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert 'scope="metrics:write"' in response.headers["www-authenticate"]


async def test_static_write_token(client):
    response = await client.post("/v1/metric-events", json=EVENT, headers=bearer(WRITE_TOKEN))
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert (await read_series(client, WRITE_TOKEN)).status_code == 403


async def test_wrong_static_token(client):
    response = await read_series(client, READ_TOKEN[:-1] + "x")
    assert response.status_code == 401
    assert response.json()["reason"] == "unknown_token"
    assert response.headers["www-authenticate"] == 'Bearer realm="hookledger", error="invalid_token"'


async def test_missing_and_malformed_header(client):
    missing = await client.get("/v1/metrics/usage", params=WINDOW)
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_token"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    basic = await client.get("/v1/metrics/usage", params=WINDOW, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert 'error="invalid_request"' in basic.headers["www-authenticate"]


async def test_jwt_with_scope(client, issuer):
    assert (await read_series(client, issuer.token(scope="openid metrics:read"))).status_code == 200


async def test_jwt_permissions_claim(client, issuer):
    token = issuer.token(scope=None, permissions=["metrics:write"])
    response = await client.post("/v1/metric-events", json=EVENT, headers=bearer(token))
    assert response.status_code == 200


async def test_jwt_missing_scope_is_403(client, issuer):
    response = await read_series(client, issuer.token(scope="metrics:write"))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


async def test_expired_jwt_is_401_with_reason(client, issuer, clock):
    token = issuer.token()
    clock.advance(hours=2)
    response = await read_series(client, token)

    assert response.status_code == 401
    problem = response.json()
    assert problem["code"] == "invalid_token"
    assert problem["reason"] == "expired"
    assert "expired" in problem["detail"]
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "error_description=" in challenge


async def test_hs256_jwt_is_401(client, issuer):
    from joserfc import jwt
    from joserfc.jwk import OctKey

    token = jwt.encode({"alg": "HS256", "kid": "key-1"}, issuer.claims(), OctKey.import_key("s" * 40))
    response = await read_series(client, token)
    assert response.status_code == 401
    assert response.json()["reason"] == "unsupported_algorithm"


async def test_jwks_outage_is_503(client, issuer):
    issuer.status = 500
    response = await read_series(client, issuer.token())
    assert response.status_code == 503
    assert response.json()["code"] == "jwks_unavailable"
    assert "Retry-After" in response.headers


async def test_prometheus_counters(client, issuer, clock):
    await read_series(client, READ_TOKEN)
    await read_series(client, WRITE_TOKEN)
    await client.get("/v1/metrics/usage", params=WINDOW)
    expired = issuer.token()
    clock.advance(hours=2)
    await read_series(client, expired)
    await read_series(client, issuer.token(aud="https://other.example/"))

    text = (await client.get("/metrics")).text
    assert 'hookledger_admin_requests_total{method="GET",route="/v1/metrics/{name}",status="200"} 1.0' in text
    assert 'hookledger_admin_requests_total{method="GET",route="/v1/metrics/{name}",status="403"} 1.0' in text
    assert 'hookledger_admin_requests_total{method="GET",route="/v1/metrics/{name}",status="401"} 3.0' in text
    for reason in ("insufficient_scope", "missing_token", "expired", "bad_audience"):
        assert f'hookledger_auth_failures_total{{reason="{reason}"}} 1.0' in text
    assert "usage" not in text.split("hookledger_admin_requests")[0]
