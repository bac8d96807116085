"""Twilio verification: public URL, sorted form parameters, bodySHA256, port variants."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import pytest

from app.ingest.schemes import Delivery, SchemeConfigError, VerificationError, build_scheme
from tests.ingest.schemes.senders import NOW, twilio_signature

TOKEN = "12345"
OLD_TOKEN = "67890"
PUBLIC_URL = "https://hooks.example.com/v1/hooks/twilio"
# The URL the service receives behind a TLS-terminating proxy.
REQUEST_URL = "http://10.0.0.5:8000/v1/hooks/twilio"
PARAMETERS = [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+15005550006"), ("Body", "café")]
FORM_BODY = urlencode(PARAMETERS).encode()


def verify(headers, body=FORM_BODY, url=REQUEST_URL, secrets=(TOKEN,), public_url=PUBLIC_URL, **options):
    scheme = build_scheme("twilio", list(secrets), {"public_url": public_url, **options})
    return scheme.verify(Delivery(headers=headers, body=body, url=url), NOW)


def rejection(headers, body=FORM_BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


def form_headers(token: str = TOKEN, url: str = PUBLIC_URL, parameters=PARAMETERS) -> dict[str, str]:
    return {"x-twilio-signature": twilio_signature(token, url, parameters)}


def test_valid_form_behind_proxy() -> None:
    verified = verify(form_headers())
    assert verified.details["signed_url"] == PUBLIC_URL
    assert verified.header_key is None


def test_request_query_is_appended() -> None:
    headers = form_headers(url=PUBLIC_URL + "?tenant=a&x=1")
    assert verify(headers, url=REQUEST_URL + "?tenant=a&x=1").details["signed_url"] == PUBLIC_URL + "?tenant=a&x=1"
    assert rejection(headers, url=REQUEST_URL + "?tenant=b&x=1").code == "invalid_signature"


def test_explicit_default_port_variant() -> None:
    assert verify(form_headers(url="https://hooks.example.com:443/v1/hooks/twilio")).details["matched"] == "secret 1"


def test_public_url_with_default_port_accepts_portless_signature() -> None:
    verified = verify(form_headers(), public_url="https://hooks.example.com:443/v1/hooks/twilio")
    assert verified.details["signed_url"] == PUBLIC_URL


def test_idempotency_token_header() -> None:
    headers = form_headers() | {"i-twilio-idempotency-token": "fa0a1a0e-token"}
    assert verify(headers).header_key == "fa0a1a0e-token"


def test_repeated_keys_are_all_signed() -> None:
    parameters = [("Tag", "b"), ("Tag", "a"), ("To", "+1")]
    body = urlencode(parameters).encode()
    assert verify(form_headers(parameters=parameters), body).details["matched"] == "secret 1"
    one_tag = [("Tag", "a"), ("To", "+1")]
    assert rejection(form_headers(parameters=one_tag), body).code == "invalid_signature"


def test_blank_values_are_signed() -> None:
    parameters = [("Body", ""), ("To", "+1")]
    assert verify(form_headers(parameters=parameters), urlencode(parameters).encode()).details["matched"]


def test_json_body_with_body_hash() -> None:
    body = b'{"property": "value", "boolean": true}'
    query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
    headers = {"x-twilio-signature": twilio_signature(TOKEN, f"{PUBLIC_URL}?{query}")}
    assert verify(headers, body, url=f"{REQUEST_URL}?{query}").details["matched"] == "secret 1"


def test_json_body_not_matching_body_hash() -> None:
    body = b'{"property": "value"}'
    query = "bodySHA256=" + hashlib.sha256(b"other").hexdigest()
    headers = {"x-twilio-signature": twilio_signature(TOKEN, f"{PUBLIC_URL}?{query}")}
    error = rejection(headers, body, url=f"{REQUEST_URL}?{query}")
    assert error.code == "invalid_signature"
    assert "bodySHA256" in error.detail


def test_rotated_secret_second_of_two() -> None:
    assert verify(form_headers(OLD_TOKEN), secrets=(TOKEN, OLD_TOKEN)).details["matched"] == "secret 2"


def test_tampered_parameter() -> None:
    body = FORM_BODY.replace(b"delivered", b"failed")
    assert rejection(form_headers(), body).code == "invalid_signature"


def test_wrong_secret() -> None:
    assert rejection(form_headers(OLD_TOKEN)).code == "invalid_signature"


def test_request_url_with_lone_surrogate() -> None:
    error = rejection(form_headers(), url=REQUEST_URL + "?a=\udcff")
    assert error.code == "invalid_signature"


def test_missing_header() -> None:
    assert rejection({}).code == "missing_header"


@pytest.mark.parametrize("value", ["not base64", "QUJD", "RSOYDt4T1cUTdK1PDd93/VVr8B8"])
def test_malformed_header(value: str) -> None:
    assert rejection({"x-twilio-signature": value}).code == "malformed_header"


@pytest.mark.parametrize("body", [b"Body=\xff", b"Body=%FF", b"a=1&" * 1001])
def test_malformed_form_body(body: bytes) -> None:
    error = rejection(form_headers(), body)
    assert (error.code, error.status) == ("malformed_payload", 400)


@pytest.mark.parametrize(
    "public_url",
    [
        "hooks.example.com/v1",
        "ftp://hooks.example.com/v1",
        "https://hooks.example.com/v1?a=1",
        "https://hooks.example.com/v1#rc=3",
        "https://user:pw@hooks.example.com/v1",
        "https://hooks.example.com:99999/v1",
    ],
)
def test_public_url_rejected(public_url: str) -> None:
    with pytest.raises(SchemeConfigError, match="public_url"):
        build_scheme("twilio", [TOKEN], {"public_url": public_url})


def test_public_url_required() -> None:
    with pytest.raises(SchemeConfigError, match="'public_url' is required"):
        build_scheme("twilio", [TOKEN], {})
