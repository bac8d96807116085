"""Standard Webhooks and Svix verification: rotation, tolerance, malformed entries, v1a."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.ingest.schemes import Delivery, SchemeConfigError, VerificationError, build_scheme
from tests.ingest.schemes.senders import (
    NOW,
    NOW_UNIX,
    STANDARD_OLD_SECRET,
    STANDARD_PRIVATE_KEY,
    STANDARD_PUBLIC_KEY,
    STANDARD_SECRET,
    standard_headers,
    standard_v1,
    standard_v1a,
)

BODY = b'{"type": "user.login", "data": {"user_id": "auth0|1"}}'


def verify(headers: dict[str, str], body: bytes = BODY, *, secrets=(STANDARD_SECRET,), now=NOW, **options):
    scheme = build_scheme("standard-webhooks", list(secrets), options)
    return scheme.verify(Delivery(headers=headers, body=body), now)


def rejection(headers: dict[str, str], body: bytes = BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


class TestAccepts:
    def test_valid_delivery_returns_id_and_time(self) -> None:
        verified = verify(standard_headers(BODY, msg_id="msg_abc"))
        assert verified.header_key == "msg_abc"
        assert verified.signed_at == datetime.fromtimestamp(NOW_UNIX, UTC)

    def test_rotated_secret_second_of_two(self) -> None:
        headers = standard_headers(BODY, secret=STANDARD_OLD_SECRET)
        verified = verify(headers, secrets=(STANDARD_SECRET, STANDARD_OLD_SECRET))
        assert verified.details["matched"] == "v1 secret 2"

    def test_rotation_entries_any_one_matches(self) -> None:
        headers = standard_headers(BODY)
        old_entry = standard_v1(STANDARD_OLD_SECRET, "msg_1", NOW_UNIX, BODY)
        headers["webhook-signature"] = f"{old_entry} {headers['webhook-signature']}"
        assert verify(headers).header_key == "msg_1"

    def test_svix_header_names(self) -> None:
        assert verify(standard_headers(BODY, prefix="svix")).header_key == "msg_1"

    def test_svix_scheme_is_an_alias(self) -> None:
        scheme = build_scheme("svix", [STANDARD_SECRET], {})
        assert scheme.verify(Delivery(headers=standard_headers(BODY), body=BODY), NOW).header_key == "msg_1"

    def test_binary_body_is_signed_as_bytes(self) -> None:
        body = b"\xff\xfe\x00raw"
        assert verify(standard_headers(body), body).header_key == "msg_1"

    def test_garbage_entries_before_valid_one_are_skipped(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = "garbage v1,abc v1,!!!!  v9,xyz " + headers["webhook-signature"]
        assert verify(headers).header_key == "msg_1"

    def test_tolerance_edge_is_inclusive(self) -> None:
        headers = standard_headers(BODY, timestamp=NOW_UNIX - 300)
        assert verify(headers).signed_at is not None
        headers = standard_headers(BODY, timestamp=NOW_UNIX + 300)
        assert verify(headers).signed_at is not None

    def test_tolerance_option_widens_window(self) -> None:
        headers = standard_headers(BODY, timestamp=NOW_UNIX - 900)
        assert verify(headers, tolerance_seconds=1000).header_key == "msg_1"

    def test_secret_without_padding_or_prefix(self) -> None:
        headers = standard_headers(BODY)
        assert verify(headers, secrets=(STANDARD_SECRET.removeprefix("whsec_").rstrip("="),)).header_key == "msg_1"

    def test_secret_white_space_is_stripped(self) -> None:
        assert verify(standard_headers(BODY), secrets=(f"  {STANDARD_SECRET}\n",)).header_key == "msg_1"

    def test_v1a_with_public_key_option(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = standard_v1a("msg_1", NOW_UNIX, BODY)
        verified = verify(headers, public_keys=[STANDARD_PUBLIC_KEY])
        assert verified.details["matched"] == "v1a public key 1"

    def test_v1a_with_public_key_as_secret(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = standard_v1a("msg_1", NOW_UNIX, BODY)
        verified = verify(headers, secrets=(STANDARD_PUBLIC_KEY,))
        assert verified.details["matched"] == "v1a secret 1"


class TestRejects:
    def test_tampered_body(self) -> None:
        error = rejection(standard_headers(BODY), BODY + b" ")
        assert error.code == "invalid_signature"
        assert error.status == 401

    def test_wrong_secret(self) -> None:
        error = rejection(standard_headers(BODY, secret=STANDARD_OLD_SECRET))
        assert error.code == "invalid_signature"
        assert STANDARD_SECRET not in error.detail

    def test_expired_timestamp(self) -> None:
        error = rejection(standard_headers(BODY, timestamp=NOW_UNIX - 301))
        assert error.code == "timestamp_out_of_tolerance"
        assert "301 s older" in error.detail

    def test_future_timestamp(self) -> None:
        error = rejection(standard_headers(BODY, timestamp=NOW_UNIX + 301))
        assert error.code == "timestamp_out_of_tolerance"
        assert "ahead of" in error.detail

    def test_expired_timestamp_wins_over_bad_signature(self) -> None:
        headers = standard_headers(BODY, timestamp=NOW_UNIX - 3600)
        error = rejection(headers, BODY + b"x")
        assert error.code == "timestamp_out_of_tolerance"

    @pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_missing_header(self, missing: str) -> None:
        headers = standard_headers(BODY)
        del headers[missing]
        error = rejection(headers)
        assert (error.code, error.status, error.header) == ("missing_header", 400, missing)
        assert missing in error.detail

    @pytest.mark.parametrize(
        "timestamp", [f"{NOW_UNIX}.9", f"-{NOW_UNIX}", f"{NOW_UNIX}abc", "１２３", "0x10", " "]
    )
    def test_timestamp_not_digits(self, timestamp: str) -> None:
        headers = standard_headers(BODY)
        headers["webhook-timestamp"] = timestamp
        error = rejection(headers)
        assert error.code in ("malformed_header", "missing_header")
        assert error.status == 400

    def test_huge_timestamp(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-timestamp"] = "9" * 5000
        assert rejection(headers).code in ("malformed_header", "timestamp_out_of_tolerance")

    def test_no_well_formed_entry(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = "garbage more-garbage"
        error = rejection(headers)
        assert (error.code, error.status) == ("malformed_header", 400)

    def test_unknown_versions_only(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
        assert rejection(headers).code == "invalid_signature"

    def test_v1a_without_public_key_is_skipped(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = standard_v1a("msg_1", NOW_UNIX, BODY)
        assert rejection(headers).code == "invalid_signature"

    def test_too_many_entries(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = " ".join(["v1,AAAA"] * 40) + " " + headers["webhook-signature"]
        assert rejection(headers).code == "malformed_header"

    def test_huge_header(self) -> None:
        headers = standard_headers(BODY)
        headers["webhook-signature"] = "v1," + "A" * 10_000
        assert rejection(headers).code == "malformed_header"

    def test_id_with_dot(self) -> None:
        headers = standard_headers(BODY, msg_id="msg.1")
        assert rejection(headers).code == "malformed_header"

    def test_id_not_printable_ascii(self) -> None:
        headers = standard_headers(BODY, msg_id="msg 1")
        assert rejection(headers).code == "malformed_header"

    def test_replayed_under_other_id(self) -> None:
        headers = standard_headers(BODY, msg_id="msg_1")
        headers["webhook-id"] = "msg_2"
        assert rejection(headers).code == "invalid_signature"


class TestConfiguration:
    def test_private_key_secret_rejected(self) -> None:
        with pytest.raises(SchemeConfigError, match="private key"):
            build_scheme("standard-webhooks", [STANDARD_PRIVATE_KEY], {})

    @pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "v1,whsec_abc"])
    def test_secret_not_base64(self, secret: str) -> None:
        with pytest.raises(SchemeConfigError, match="secret 1"):
            build_scheme("standard-webhooks", [secret], {})

    def test_public_key_wrong_length(self) -> None:
        with pytest.raises(SchemeConfigError, match="public_keys entry 1"):
            build_scheme("standard-webhooks", [STANDARD_SECRET], {"public_keys": ["whpk_AAAA"]})

    def test_public_keys_from_comma_text(self) -> None:
        scheme = build_scheme(
            "standard-webhooks", [STANDARD_SECRET], {"public_keys": f"{STANDARD_PUBLIC_KEY},{STANDARD_PUBLIC_KEY}"}
        )
        assert len(scheme.public_keys) == 2

    def test_tolerance_must_be_positive(self) -> None:
        with pytest.raises(SchemeConfigError, match="tolerance_seconds"):
            build_scheme("standard-webhooks", [STANDARD_SECRET], {"tolerance_seconds": 0})


def test_signed_at_is_attempt_time() -> None:
    later = NOW + timedelta(seconds=120)
    verified = verify(standard_headers(BODY, timestamp=NOW_UNIX + 100), now=later)
    assert verified.signed_at == NOW + timedelta(seconds=100)
