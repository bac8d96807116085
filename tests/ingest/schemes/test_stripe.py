"""Stripe verification: v1 entries, downgrade protection, symmetric tolerance."""

from __future__ import annotations

import pytest

from app.ingest.schemes import Delivery, SchemeConfigError, VerificationError, build_scheme
from tests.ingest.schemes.senders import NOW, NOW_UNIX, stripe_headers, stripe_v1

SECRET = "whsec_test_secret"
OLD_SECRET = "whsec_previous_secret"
BODY = b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "created": 1764590400}'


def verify(headers: dict[str, str], body: bytes = BODY, secrets=(SECRET,), **options):
    return build_scheme("stripe", list(secrets), options).verify(Delivery(headers=headers, body=body), NOW)


def rejection(headers: dict[str, str], body: bytes = BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


def test_valid() -> None:
    verified = verify(stripe_headers(BODY, SECRET))
    assert verified.signed_at == NOW
    assert verified.header_key is None


def test_rotated_secret_second_of_two() -> None:
    verified = verify(stripe_headers(BODY, OLD_SECRET), secrets=(SECRET, OLD_SECRET))
    assert verified.details["matched"] == "v1 secret 2"


def test_several_v1_entries_one_matches() -> None:
    assert verify(stripe_headers(BODY, OLD_SECRET, SECRET)).details["matched"] == "v1 secret 1"


def test_spaces_around_items() -> None:
    signature = stripe_v1(SECRET, NOW_UNIX, BODY)
    assert verify({"stripe-signature": f"t={NOW_UNIX}, v1={signature}"}).signed_at == NOW


def test_tampered_body() -> None:
    assert rejection(stripe_headers(BODY, SECRET), BODY.replace(b"evt_1", b"evt_2")).code == "invalid_signature"


def test_wrong_secret() -> None:
    error = rejection(stripe_headers(BODY, OLD_SECRET))
    assert error.code == "invalid_signature"
    assert SECRET not in error.detail


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_outside_tolerance(offset: int) -> None:
    error = rejection(stripe_headers(BODY, SECRET, timestamp=NOW_UNIX + offset))
    assert (error.code, error.status) == ("timestamp_out_of_tolerance", 401)


def test_v0_is_ignored() -> None:
    signature = stripe_v1(SECRET, NOW_UNIX, BODY)
    error = rejection({"stripe-signature": f"t={NOW_UNIX},v0={signature}"})
    assert error.code == "invalid_signature"
    assert "no v1 signature" in error.detail


def test_missing_header() -> None:
    error = rejection({})
    assert (error.code, error.status, error.header) == ("missing_header", 400, "stripe-signature")


@pytest.mark.parametrize(
    "value",
    [
        "v1=abc",
        f"t={NOW_UNIX},t={NOW_UNIX},v1=abc",
        "t=now,v1=abc",
        "t=,v1=abc",
        ",,,,",
        ",".join(["x=1"] * 40),
    ],
)
def test_malformed_header(value: str) -> None:
    error = rejection({"stripe-signature": value})
    assert (error.code, error.status) == ("malformed_header", 400)


def test_v1_not_hex_is_skipped() -> None:
    error = rejection({"stripe-signature": f"t={NOW_UNIX},v1=zz,v1=é"})
    assert error.code == "invalid_signature"


def test_secret_with_inner_white_space_rejected() -> None:
    with pytest.raises(SchemeConfigError, match="white space"):
        build_scheme("stripe", ["whsec_abc def"], {})


def test_defaults_key_from_body_id() -> None:
    scheme = build_scheme("stripe", [SECRET], {})
    assert scheme.defaults.idempotency_key.pointers == ("/id",)
    assert scheme.defaults.occurred_at_pointer == "/created"
