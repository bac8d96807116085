"""Slack verification: v0 signatures over form and JSON bodies, request timestamp."""

from __future__ import annotations

import pytest

from app.ingest.schemes import Delivery, VerificationError, build_scheme
from tests.ingest.schemes.senders import NOW, NOW_UNIX, slack_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OLD_SECRET = "0123456789abcdef0123456789abcdef"
FORM_BODY = b"token=x&team_id=T1&command=%2Fcollect&text=a%2Ab"
JSON_BODY = b'{"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}'


def verify(headers: dict[str, str], body: bytes = JSON_BODY, secrets=(SECRET,), **options):
    return build_scheme("slack", list(secrets), options).verify(Delivery(headers=headers, body=body), NOW)


def rejection(headers: dict[str, str], body: bytes = JSON_BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


@pytest.mark.parametrize("body", [FORM_BODY, JSON_BODY], ids=["form", "json"])
def test_valid(body: bytes) -> None:
    assert verify(slack_headers(SECRET, body), body).signed_at == NOW


def test_rotated_secret_second_of_two() -> None:
    assert verify(slack_headers(OLD_SECRET, JSON_BODY), secrets=(SECRET, OLD_SECRET)).details["matched"] == "secret 2"


def test_tampered_body() -> None:
    assert rejection(slack_headers(SECRET, FORM_BODY), FORM_BODY.replace(b"%2A", b"*")).code == "invalid_signature"


def test_wrong_secret() -> None:
    assert rejection(slack_headers(OLD_SECRET, JSON_BODY)).code == "invalid_signature"


@pytest.mark.parametrize("offset", [-301, 301])
def test_expired_timestamp(offset: int) -> None:
    assert rejection(slack_headers(SECRET, JSON_BODY, NOW_UNIX + offset)).code == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("missing", ["x-slack-signature", "x-slack-request-timestamp"])
def test_missing_header(missing: str) -> None:
    headers = slack_headers(SECRET, JSON_BODY)
    del headers[missing]
    error = rejection(headers)
    assert (error.code, error.header) == ("missing_header", missing)


@pytest.mark.parametrize("value", ["v1=" + "0" * 64, "v0:" + "0" * 64, "v0=" + "0" * 63, "v0=xyz"])
def test_malformed_signature(value: str) -> None:
    headers = slack_headers(SECRET, JSON_BODY)
    headers["x-slack-signature"] = value
    assert rejection(headers).code == "malformed_header"


def test_malformed_timestamp() -> None:
    headers = slack_headers(SECRET, JSON_BODY)
    headers["x-slack-request-timestamp"] = "1531420618.5"
    assert rejection(headers).code == "malformed_header"


def test_defaults_key_from_event_id_then_body_hash() -> None:
    spec = build_scheme("slack", [SECRET], {}).defaults.idempotency_key
    assert spec.pointers == ("/event_id",)
    assert spec.body_hash_fallback
