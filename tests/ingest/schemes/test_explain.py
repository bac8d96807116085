"""`explain`: the verdict, entry-by-entry steps and the default idempotency key."""

from __future__ import annotations

import pytest

from app.ingest.schemes import Delivery, SchemeConfigError
from app.ingest.schemes.explain import explain
from tests.ingest.schemes.senders import (
    NOW,
    NOW_UNIX,
    STANDARD_OLD_SECRET,
    STANDARD_SECRET,
    github_headers,
    slack_headers,
    standard_headers,
    standard_v1,
    stripe_headers,
)

BODY = b'{"id": "evt_9", "type": "x"}'


def test_valid_names_key_and_entry() -> None:
    headers = standard_headers(BODY, msg_id="msg_7")
    result = explain("standard-webhooks", [STANDARD_SECRET], {}, Delivery(headers=headers, body=BODY), NOW)
    assert result.valid
    assert result.summary() == "valid: standard-webhooks signature verified (key msg_7 from header webhook-id)"
    assert result.steps == (
        f"webhook-timestamp {NOW_UNIX} is within the 300 s tolerance",
        "entry 1 (v1): signature matches secret 1",
    )


def test_every_entry_is_explained() -> None:
    headers = standard_headers(BODY)
    wrong = standard_v1(STANDARD_OLD_SECRET, "msg_1", NOW_UNIX, BODY)
    headers["webhook-signature"] = f"v2,abc {wrong} nonsense v1a,xyz"
    result = explain("standard-webhooks", [STANDARD_SECRET], {}, Delivery(headers=headers, body=BODY), NOW)
    assert not result.valid
    assert result.code == "invalid_signature"
    assert result.summary().startswith("invalid: invalid_signature: No entry in header webhook-signature")
    assert result.steps[1:] == (
        "entry 1 (v2): unknown version, skipped",
        "entry 2 (v1): signature does not match any configured secret",
        "entry 3: no comma between version and signature, skipped",
        "entry 4 (v1a): skipped, no public key is configured (option public_keys)",
    )


def test_stale_timestamp_still_reports_signature() -> None:
    headers = standard_headers(BODY, timestamp=NOW_UNIX - 301)
    result = explain("standard-webhooks", [STANDARD_SECRET], {}, Delivery(headers=headers, body=BODY), NOW)
    assert result.code == "timestamp_out_of_tolerance"
    assert result.steps == (
        f"timestamp {NOW_UNIX - 301} in header webhook-timestamp is 301 s older than the server clock, "
        "more than the 300 s tolerance",
        "entry 1 (v1): signature matches secret 1",
    )


def test_key_from_body_pointer() -> None:
    result = explain("stripe", ["whsec_x"], {}, Delivery(headers=stripe_headers(BODY, "whsec_x"), body=BODY), NOW)
    assert (result.idempotency_key, result.key_origin) == ("evt_9", "body field /id")


def test_key_falls_back_to_body_hash() -> None:
    body = b"token=x&command=%2Fdeploy"
    result = explain("slack", ["s"], {}, Delivery(headers=slack_headers("s", body), body=body), NOW)
    assert result.idempotency_key is not None
    assert result.idempotency_key.startswith("sha256:")
    assert result.key_origin == "the body's SHA-256"


def test_key_from_header() -> None:
    result = explain("github", ["s"], {}, Delivery(headers=github_headers("s", BODY, delivery="d-1"), body=BODY), NOW)
    assert result.summary() == "valid: github signature verified (key d-1 from header x-github-delivery)"


def test_no_secret_or_signature_in_output() -> None:
    headers = standard_headers(BODY, secret=STANDARD_OLD_SECRET)
    result = explain("standard-webhooks", [STANDARD_SECRET], {}, Delivery(headers=headers, body=BODY), NOW)
    expected_signature = standard_v1(STANDARD_SECRET, "msg_1", NOW_UNIX, BODY).removeprefix("v1,")
    text = "\n".join([result.summary(), *result.steps])
    assert STANDARD_SECRET.removeprefix("whsec_") not in text
    assert expected_signature not in text


def test_configuration_errors_propagate() -> None:
    with pytest.raises(SchemeConfigError):
        explain("nope", ["s"], {}, Delivery(headers={}, body=b""), NOW)
