"""GitHub verification: X-Hub-Signature-256, the legacy SHA-1 header, the delivery id."""

from __future__ import annotations

import pytest

from app.ingest.schemes import Delivery, VerificationError, build_scheme
from tests.ingest.schemes.senders import NOW, github_headers, mac

SECRET = "It's a Secret to Everybody"
OLD_SECRET = "previous secret"
BODY = b'{"action": "opened", "number": 1}'


def verify(headers: dict[str, str], body: bytes = BODY, secrets=(SECRET,), **options):
    return build_scheme("github", list(secrets), options).verify(Delivery(headers=headers, body=body), NOW)


def rejection(headers: dict[str, str], body: bytes = BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


def test_valid_returns_delivery_id() -> None:
    verified = verify(github_headers(SECRET, BODY))
    assert verified.header_key == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert verified.signed_at is None


def test_missing_delivery_id_gives_no_key() -> None:
    assert verify(github_headers(SECRET, BODY, delivery=None)).header_key is None


def test_malformed_delivery_id() -> None:
    error = rejection(github_headers(SECRET, BODY, delivery="two words"))
    assert (error.code, error.header) == ("malformed_header", "x-github-delivery")


def test_rotated_secret_second_of_two() -> None:
    verified = verify(github_headers(OLD_SECRET, BODY), secrets=(SECRET, OLD_SECRET))
    assert verified.details["matched"] == "sha256 secret 2"


def test_tampered_body() -> None:
    assert rejection(github_headers(SECRET, BODY), BODY + b"\n").code == "invalid_signature"


def test_wrong_secret() -> None:
    error = rejection(github_headers(OLD_SECRET, BODY))
    assert (error.code, error.status) == ("invalid_signature", 401)


def test_missing_signature() -> None:
    error = rejection({"x-github-delivery": "abc"})
    assert (error.code, error.status, error.header) == ("missing_header", 400, "x-hub-signature-256")


def test_sha1_only_needs_option() -> None:
    headers = {"x-hub-signature": "sha1=" + mac(SECRET.encode(), BODY, "sha1").hex()}
    error = rejection(headers)
    assert error.code == "missing_header"
    assert "allow_sha1" in error.detail
    assert verify(headers, allow_sha1=True).details["matched"] == "sha1 secret 1"


def test_sha256_preferred_over_sha1() -> None:
    headers = github_headers(OLD_SECRET, BODY)
    headers["x-hub-signature"] = "sha1=" + mac(SECRET.encode(), BODY, "sha1").hex()
    assert rejection(headers, allow_sha1=True).code == "invalid_signature"


@pytest.mark.parametrize(
    "value", ["757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "sha256=abc", "sha1=" + "0" * 40, "sha256=" + "g" * 64]
)
def test_malformed_signature(value: str) -> None:
    error = rejection({"x-hub-signature-256": value})
    assert (error.code, error.status) == ("malformed_header", 400)


def test_tolerance_option_is_unknown() -> None:
    from app.ingest.schemes import SchemeConfigError

    with pytest.raises(SchemeConfigError, match="tolerance_seconds"):
        build_scheme("github", [SECRET], {"tolerance_seconds": 300})


def test_event_type_from_header_and_action() -> None:
    defaults = build_scheme("github", [SECRET], {}).defaults
    assert defaults.event_type_header == "x-github-event"
    assert defaults.event_type_pointer == "/action"
    assert defaults.idempotency_key.body_hash_fallback
