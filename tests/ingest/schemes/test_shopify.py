"""Shopify verification: base64 HMAC of the body, webhook id or event id as key."""

from __future__ import annotations

import pytest

from app.ingest.schemes import Delivery, SchemeConfigError, VerificationError, build_scheme
from tests.ingest.schemes.senders import NOW, shopify_headers

SECRET = "shpss_client_secret"
OLD_SECRET = "shpss_old_client_secret"
BODY = b'{"id":820982911946154508,"note":"caf\xc3\xa9 /path"}'


def verify(headers: dict[str, str], body: bytes = BODY, secrets=(SECRET,), **options):
    return build_scheme("shopify", list(secrets), options).verify(Delivery(headers=headers, body=body), NOW)


def rejection(headers: dict[str, str], body: bytes = BODY, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(headers, body, **kwargs)
    return caught.value


def test_valid_keyed_by_webhook_id() -> None:
    assert verify(shopify_headers(SECRET, BODY)).header_key == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def test_key_header_option_uses_event_id() -> None:
    verified = verify(shopify_headers(SECRET, BODY), key_header="X-Shopify-Event-Id")
    assert verified.header_key == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    scheme = build_scheme("shopify", [SECRET], {"key_header": "x-shopify-event-id"})
    assert scheme.defaults.idempotency_key.headers == ("x-shopify-event-id",)


def test_key_header_option_rejects_other_headers() -> None:
    with pytest.raises(SchemeConfigError, match="key_header"):
        build_scheme("shopify", [SECRET], {"key_header": "x-request-id"})


def test_rotated_secret_second_of_two() -> None:
    assert verify(shopify_headers(OLD_SECRET, BODY), secrets=(SECRET, OLD_SECRET)).details["matched"] == "secret 2"


def test_tampered_body() -> None:
    assert rejection(shopify_headers(SECRET, BODY), BODY.replace(b"\xc3\xa9", b"\\u00e9")).code == "invalid_signature"


def test_wrong_secret() -> None:
    assert rejection(shopify_headers(OLD_SECRET, BODY)).code == "invalid_signature"


def test_missing_header() -> None:
    headers = shopify_headers(SECRET, BODY)
    del headers["x-shopify-hmac-sha256"]
    assert rejection(headers).code == "missing_header"


@pytest.mark.parametrize("value", ["not base64!", "QUJD", "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw", "é" * 44])
def test_malformed_header(value: str) -> None:
    error = rejection({"x-shopify-hmac-sha256": value})
    assert (error.code, error.status) == ("malformed_header", 400)


def test_event_type_from_topic_header() -> None:
    defaults = build_scheme("shopify", [SECRET], {}).defaults
    assert defaults.event_type_header == "x-shopify-topic"
    assert defaults.event_type_pointer is None
