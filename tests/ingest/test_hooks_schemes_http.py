"""Every signature scheme through `POST /v1/hooks/{source}` on SQLite and PostgreSQL.

Deliveries are signed here the way each sender documents it, so a verifier
and a signer that share a mistake cannot pass together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from app.db.models import Event
from tests.ingest.schemes.senders import (
    STANDARD_OLD_SECRET,
    STANDARD_SECRET,
    b64,
    github_headers,
    mac,
    shopify_headers,
    slack_headers,
    standard_headers,
    stripe_headers,
    twilio_signature,
)
from tests.support.app import FakeClock, config_from, running_app

TWILIO_PUBLIC_URL = "https://hooks.example.com/v1/hooks/twilio"
# The event's own time; a retry repeats the payload and only signs a new attempt time.
EVENT_TIME = 1764590000

SECRETS = {
    "std": (STANDARD_SECRET, STANDARD_OLD_SECRET),
    "svix": (STANDARD_SECRET, STANDARD_OLD_SECRET),
    "stripe": ("whsec_stripe_current", "whsec_stripe_previous"),
    "github": ("github current secret", "github previous secret"),
    "shopify": ("shopify-current", "shopify-previous"),
    "slack": ("slack0current0secret", "slack0previous0secret"),
    "twilio": ("twilio-token-current", "twilio-token-previous"),
    "generic": ("generic-current", "generic-previous"),
}
SOURCES = {
    "std": {"scheme": "standard-webhooks"},
    "svix": {"scheme": "svix"},
    "stripe": {"scheme": "stripe"},
    "github": {"scheme": "github"},
    "shopify": {"scheme": "shopify"},
    "slack": {"scheme": "slack"},
    # Twilio form callbacks carry no `type` field, so the source names the status field.
    "twilio": {"scheme": "twilio", "public_url": TWILIO_PUBLIC_URL, "event_type_pointer": "/MessageStatus"},
    "generic": {
        "scheme": "hmac",
        "signature_header": "X-Signature",
        "prefix": "sha256=",
        "signed_content": "timestamp.body",
        "timestamp_header": "X-Timestamp",
    },
}
WRONG_SECRET = {
    "std": "whsec_V1JPTkdXUk9OR1dST05HV1JPTkdXUk9O",
    "svix": "whsec_V1JPTkdXUk9OR1dST05HV1JPTkdXUk9O",
}


def environ() -> dict[str, str]:
    variables = {}
    for source, (current, previous) in SECRETS.items():
        variables[f"{source.upper()}_SECRET"] = current
        variables[f"{source.upper()}_OLD_SECRET"] = previous
    return variables


def configuration() -> dict:
    sources = {}
    for name, table in SOURCES.items():
        sources[name] = {**table, "secrets_env": [f"{name.upper()}_SECRET", f"{name.upper()}_OLD_SECRET"]}
    return {"sources": sources}


def json_body(document: dict) -> bytes:
    return json.dumps(document).encode()


# Each signer returns (body, headers) for one delivery: `secret` signs it at `unix` seconds,
# and `with_id` False leaves out the sender's event id.
Signer = Callable[[str, int, bool], tuple[bytes, dict[str, str]]]


def sign_standard(prefix: str) -> Signer:
    def sign(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
        body = json_body({"type": "user.login", "timestamp": "2026-12-01T11:59:00Z", "data": {"id": 1}})
        headers = standard_headers(body, secret=secret, msg_id="msg_2Kw", timestamp=unix, prefix=prefix)
        if not with_id:
            del headers[f"{prefix}-id"]
        return body, headers | {"content-type": "application/json"}

    return sign


def sign_stripe(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
    body = json_body({"id": "evt_1Q", "object": "event", "type": "invoice.paid", "created": EVENT_TIME})
    return body, stripe_headers(body, secret, timestamp=unix) | {"content-type": "application/json"}


def sign_github(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
    body = json_body({"action": "opened", "number": 7, "sender": {"login": "octocat"}})
    headers = github_headers(secret, body, delivery="d6a1f0e2-1111-11ee-8c90-0242ac120002" if with_id else None)
    return body, headers | {"x-github-event": "pull_request", "content-type": "application/json"}


def sign_shopify(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
    body = json_body({"id": 820982911946154508, "email": "jon@example.com"})
    headers = shopify_headers(secret, body)
    if not with_id:
        del headers["x-shopify-webhook-id"]
    return body, headers | {"content-type": "application/json"}


def sign_slack(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
    document = {"type": "event_callback", "event": {"type": "app_mention", "user": "U1", "event_time": EVENT_TIME}}
    if with_id:
        document["event_id"] = "Ev08MFMKH6"
    body = json_body(document)
    return body, slack_headers(secret, body, unix) | {"content-type": "application/json"}


def sign_twilio(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
    parameters = [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+15005550006")]
    headers = {
        "x-twilio-signature": twilio_signature(secret, TWILIO_PUBLIC_URL, parameters),
        "content-type": "application/x-www-form-urlencoded",
    }
    if with_id:
        headers["i-twilio-idempotency-token"] = "a7f3c1d2-token"
    return urlencode(parameters).encode(), headers


def sign_generic(secret: str, unix: int, with_id: bool) -> tuple[bytes, dict[str, str]]:
    body = json_body({"type": "thing.happened", "timestamp": "2026-12-01T11:58:00Z"})
    signature = mac(secret.encode(), f"{unix}.".encode() + body).hex()
    return body, {"x-signature": f"sha256={signature}", "x-timestamp": str(unix), "content-type": "application/json"}


def body_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Case:
    source: str
    sign: Signer
    key: str
    event_type: str
    timestamped: bool
    # The key when the sender's id is left out, or None when the delivery must be rejected.
    fallback_key: Callable[[bytes], str] | None


CASES = [
    Case("std", sign_standard("webhook"), "msg_2Kw", "user.login", True, None),
    Case("svix", sign_standard("svix"), "msg_2Kw", "user.login", True, None),
    Case("stripe", sign_stripe, "evt_1Q", "invoice.paid", True, lambda body: "evt_1Q"),
    Case("github", sign_github, "d6a1f0e2-1111-11ee-8c90-0242ac120002", "pull_request.opened", False, body_hash),
    Case("shopify", sign_shopify, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "orders/create", False, body_hash),
    Case("slack", sign_slack, "Ev08MFMKH6", "app_mention", True, body_hash),
    Case("twilio", sign_twilio, "a7f3c1d2-token", "delivered", False, body_hash),
    Case("generic", sign_generic, "", "thing.happened", True, body_hash),
]
IDS = [case.source for case in CASES]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(database_url: str, clock: FakeClock, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    config = config_from(configuration(), environ())
    async with running_app(database_url, config, clock=clock, data_dir=tmp_path) as http:
        yield http


def now_unix(clock: FakeClock) -> int:
    return int(clock.now.timestamp())


async def post(client: httpx.AsyncClient, case: Case, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"/v1/hooks/{case.source}", content=body, headers=headers)


async def stored_events(client: httpx.AsyncClient) -> list[Event]:
    database = client.app.state.hookledger.database  # type: ignore[attr-defined]
    async with database.transaction() as session:
        return list((await session.execute(select(Event).order_by(Event.id))).scalars())


def expected_key(case: Case, body: bytes) -> str:
    # The generic source has no id of its own, so its key is always the body hash.
    return case.key or body_hash(body)


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_valid_delivery_accepted(client, clock, case: Case) -> None:
    body, headers = case.sign(SECRETS[case.source][0], now_unix(clock), True)
    response = await post(client, case, body, headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    rows = await stored_events(client)
    assert len(rows) == 1
    assert rows[0].source == case.source
    assert rows[0].idempotency_key == expected_key(case, body)
    assert rows[0].event_type == case.event_type


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_tampered_body_rejected(client, clock, case: Case) -> None:
    body, headers = case.sign(SECRETS[case.source][0], now_unix(clock), True)
    response = await post(client, case, body + b" ", headers)

    assert_problem(response, 401, "invalid_signature")
    assert await stored_events(client) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_wrong_secret_rejected(client, clock, case: Case) -> None:
    wrong = WRONG_SECRET.get(case.source, "not-the-configured-secret")
    body, headers = case.sign(wrong, now_unix(clock), True)
    response = await post(client, case, body, headers)

    assert_problem(response, 401, "invalid_signature")
    assert wrong not in response.text
    assert await stored_events(client) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_rotated_secret_accepted(client, clock, case: Case) -> None:
    body, headers = case.sign(SECRETS[case.source][1], now_unix(clock), True)
    response = await post(client, case, body, headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"


@pytest.mark.parametrize("case", [case for case in CASES if case.timestamped], ids=[c.source for c in CASES if c.timestamped])
async def test_expired_timestamp_rejected(client, clock, case: Case) -> None:
    body, headers = case.sign(SECRETS[case.source][0], now_unix(clock) - 301, True)
    response = await post(client, case, body, headers)

    assert_problem(response, 401, "timestamp_out_of_tolerance")
    assert await stored_events(client) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_duplicate_delivery_stores_once(client, clock, case: Case) -> None:
    body, headers = case.sign(SECRETS[case.source][0], now_unix(clock), True)
    first = await post(client, case, body, headers)
    # A retry a minute later, signed afresh where the scheme signs a timestamp.
    clock.advance(seconds=60)
    body, headers = case.sign(SECRETS[case.source][0], now_unix(clock), True)
    second = await post(client, case, body, headers)

    assert first.json()["status"] == "accepted"
    assert second.status_code == 200, second.text
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert len(await stored_events(client)) == 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_missing_id_falls_back(client, clock, case: Case) -> None:
    body, headers = case.sign(SECRETS[case.source][0], now_unix(clock), False)
    response = await post(client, case, body, headers)

    if case.fallback_key is None:
        # Standard Webhooks signs the id, so a delivery without it cannot verify.
        assert_problem(response, 400, "missing_header")
        assert await stored_events(client) == []
        return
    assert response.status_code == 200, response.text
    rows = await stored_events(client)
    assert [row.idempotency_key for row in rows] == [case.fallback_key(body)]


async def test_twilio_query_string_is_signed(client, clock) -> None:
    parameters = [("MessageSid", "SM2"), ("MessageStatus", "sent")]
    signature = twilio_signature(SECRETS["twilio"][0], TWILIO_PUBLIC_URL + "?tenant=acme", parameters)
    headers = {"x-twilio-signature": signature, "content-type": "application/x-www-form-urlencoded"}
    body = urlencode(parameters).encode()

    accepted = await client.post("/v1/hooks/twilio?tenant=acme", content=body, headers=headers)
    rejected = await client.post("/v1/hooks/twilio?tenant=other", content=body, headers=headers)

    assert accepted.status_code == 200, accepted.text
    assert_problem(rejected, 401, "invalid_signature")


async def test_twilio_bad_form_bytes_rejected(client, clock) -> None:
    body = b"MessageStatus=%FF"
    headers = {
        "x-twilio-signature": b64(mac(SECRETS["twilio"][0].encode(), TWILIO_PUBLIC_URL.encode(), "sha1")),
        "content-type": "application/x-www-form-urlencoded",
    }
    response = await client.post("/v1/hooks/twilio", content=body, headers=headers)

    assert_problem(response, 400, "malformed_payload")


async def test_slack_url_verification_answered_not_stored(client, clock) -> None:
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).encode()
    headers = slack_headers(SECRETS["slack"][0], body, now_unix(clock)) | {"content-type": "application/json"}

    response = await client.post("/v1/hooks/slack", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert await stored_events(client) == []


async def test_slack_unsigned_url_verification_rejected(client, clock) -> None:
    body = json.dumps({"challenge": "abc", "type": "url_verification"}).encode()
    headers = slack_headers("not the secret", body, now_unix(clock)) | {"content-type": "application/json"}

    response = await client.post("/v1/hooks/slack", content=body, headers=headers)

    assert_problem(response, 401, "invalid_signature")


async def test_slack_slash_command_typed_by_command(client, clock) -> None:
    body = urlencode([("command", "/deploy"), ("text", "prod"), ("user_id", "U2147483697")]).encode()
    headers = slack_headers(SECRETS["slack"][0], body, now_unix(clock)) | {
        "content-type": "application/x-www-form-urlencoded"
    }

    response = await client.post("/v1/hooks/slack", content=body, headers=headers)

    assert response.status_code == 200, response.text
    rows = await stored_events(client)
    assert [row.event_type for row in rows] == ["/deploy"]
    assert rows[0].payload == {"command": "/deploy", "text": "prod", "user_id": "U2147483697"}


async def test_twilio_default_event_type_pointers(database_url, clock, tmp_path) -> None:
    raw = {"sources": {"twilio": {"scheme": "twilio", "public_url": TWILIO_PUBLIC_URL, "secrets_env": ["TWILIO_TOKEN"]}}}
    config = config_from(raw, {"TWILIO_TOKEN": SECRETS["twilio"][0]})
    voice = [("CallSid", "CA1"), ("CallStatus", "completed")]
    headers = {
        "x-twilio-signature": twilio_signature(SECRETS["twilio"][0], TWILIO_PUBLIC_URL, voice),
        "content-type": "application/x-www-form-urlencoded",
    }
    async with running_app(database_url, config, clock=clock, data_dir=tmp_path) as http:
        response = await http.post("/v1/hooks/twilio", content=urlencode(voice).encode(), headers=headers)
        assert response.status_code == 200, response.text
        rows = await stored_events(http)
    assert [row.event_type for row in rows] == ["completed"]


async def test_stripe_id_of_wrong_type_rejected(client, clock) -> None:
    body = json.dumps({"id": {"nested": "evt_1"}, "type": "invoice.paid", "created": EVENT_TIME}).encode()
    headers = stripe_headers(body, SECRETS["stripe"][0], timestamp=now_unix(clock)) | {"content-type": "application/json"}

    response = await client.post("/v1/hooks/stripe", content=body, headers=headers)

    assert_problem(response, 422, "invalid_event")
    assert "/id" in response.json()["detail"]
    assert await stored_events(client) == []


async def test_github_repeated_event_header_rejected(client, clock) -> None:
    body = json.dumps({"action": "opened"}).encode()
    headers = github_headers(SECRETS["github"][0], body)
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    raw += [(b"x-github-event", b"issues"), (b"content-type", b"application/json")]

    response = await client.post("/v1/hooks/github", content=body, headers=raw)

    assert_problem(response, 400, "malformed_header")
    assert await stored_events(client) == []


async def test_generic_repeated_configured_header_rejected(client, clock) -> None:
    body = json.dumps({"type": "thing.happened"}).encode()
    signature = "sha256=" + mac(SECRETS["generic"][0].encode(), body).hex()
    raw = [(b"x-signature", b"sha256=00"), (b"x-signature", signature.encode()), (b"content-type", b"application/json")]

    response = await client.post("/v1/hooks/generic", content=body, headers=raw)

    assert_problem(response, 400, "malformed_header")
    assert await stored_events(client) == []
