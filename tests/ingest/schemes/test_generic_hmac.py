"""The configurable `hmac` scheme: prefixes, algorithms, encodings, signed timestamps."""

from __future__ import annotations

import pytest

from app.ingest.schemes import Delivery, SchemeConfigError, VerificationError, build_scheme
from tests.ingest.schemes.senders import NOW, NOW_UNIX, b64, mac

SECRET = "generic-secret"
OLD_SECRET = "generic-old-secret"
BODY = b'{"type": "thing.happened", "id": "t_1"}'


def verify(headers, body=BODY, secrets=(SECRET,), **options):
    scheme = build_scheme("hmac", list(secrets), {"signature_header": "X-Signature", **options})
    return scheme.verify(Delivery(headers=headers, body=body), NOW)


def rejection(headers, body=BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


def test_hex_sha256_body_default() -> None:
    assert verify({"x-signature": mac(SECRET.encode(), BODY).hex()}).details["matched"] == "secret 1"


def test_prefix() -> None:
    headers = {"x-signature": "sha256=" + mac(SECRET.encode(), BODY).hex()}
    assert verify(headers, prefix="sha256=").details["matched"] == "secret 1"
    assert rejection(headers).code == "malformed_header"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_base64_algorithms(algorithm: str) -> None:
    headers = {"x-signature": b64(mac(SECRET.encode(), BODY, algorithm))}
    assert verify(headers, algorithm=algorithm, encoding="base64").details["matched"] == "secret 1"


def test_algorithm_mismatch_is_malformed() -> None:
    headers = {"x-signature": mac(SECRET.encode(), BODY, "sha1").hex()}
    assert rejection(headers).code == "malformed_header"


def timestamped(secret: str = SECRET, timestamp: int = NOW_UNIX, separator: str = ":") -> dict[str, str]:
    signature = mac(secret.encode(), f"{timestamp}{separator}".encode() + BODY).hex()
    return {"x-signature": signature, "x-timestamp": str(timestamp)}


TIMESTAMP_OPTIONS = {"signed_content": "timestamp.body", "timestamp_header": "X-Timestamp", "separator": ":"}


def test_signed_timestamp() -> None:
    assert verify(timestamped(), **TIMESTAMP_OPTIONS).signed_at == NOW


def test_signed_timestamp_expired() -> None:
    error = rejection(timestamped(timestamp=NOW_UNIX - 61), **TIMESTAMP_OPTIONS, tolerance_seconds=60)
    assert error.code == "timestamp_out_of_tolerance"


def test_signed_timestamp_missing() -> None:
    headers = timestamped()
    del headers["x-timestamp"]
    assert rejection(headers, **TIMESTAMP_OPTIONS).code == "missing_header"


def test_separator_is_signed() -> None:
    assert rejection(timestamped(separator="."), **TIMESTAMP_OPTIONS).code == "invalid_signature"


def test_rotated_secret_second_of_two() -> None:
    headers = {"x-signature": mac(OLD_SECRET.encode(), BODY).hex()}
    assert verify(headers, secrets=(SECRET, OLD_SECRET)).details["matched"] == "secret 2"


def test_tampered_body() -> None:
    assert rejection({"x-signature": mac(SECRET.encode(), BODY).hex()}, BODY + b" ").code == "invalid_signature"


def test_wrong_secret() -> None:
    assert rejection({"x-signature": mac(OLD_SECRET.encode(), BODY).hex()}).code == "invalid_signature"


def test_missing_header() -> None:
    assert rejection({}).code == "missing_header"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "'signature_header' is required"),
        ({"signature_header": "X Sig"}, "signature_header"),
        ({"signature_header": "X-Sig", "algorithm": "md5"}, "algorithm"),
        ({"signature_header": "X-Sig", "encoding": "base32"}, "encoding"),
        ({"signature_header": "X-Sig", "signed_content": "timestamp.body"}, "needs option timestamp_header"),
        ({"signature_header": "X-Sig", "timestamp_header": "X-T"}, "only read with signed_content"),
        ({"signature_header": "X-Sig", "tolerance_seconds": -5}, "tolerance_seconds"),
    ],
)
def test_invalid_options(options: dict, message: str) -> None:
    with pytest.raises(SchemeConfigError, match=message):
        build_scheme("hmac", [SECRET], options)
