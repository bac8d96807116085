"""Property tests: no header value, body or URL makes a verifier raise anything but VerificationError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingest.schemes import SCHEMES, Delivery, VerificationError, VerifiedDelivery, build_scheme
from app.ingest.schemes.explain import explain
from tests.ingest.schemes.senders import NOW, NOW_UNIX, STANDARD_PUBLIC_KEY, STANDARD_SECRET

SECRETS = {name: ["sekrit-value-1", "sekrit-value-2"] for name in SCHEMES}
SECRETS["standard-webhooks"] = SECRETS["svix"] = [STANDARD_SECRET]
OPTIONS = {
    "standard-webhooks": {"public_keys": [STANDARD_PUBLIC_KEY]},
    "github": {"allow_sha1": True},
    "twilio": {"public_url": "https://hooks.example.com/v1/hooks/twilio"},
    "hmac": {
        "signature_header": "x-signature",
        "prefix": "sha256=",
        "signed_content": "timestamp.body",
        "timestamp_header": "x-timestamp",
    },
}
HEADER_NAMES = [
    "webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp", "svix-signature",
    "stripe-signature", "x-hub-signature-256", "x-hub-signature", "x-github-delivery", "x-shopify-hmac-sha256",
    "x-shopify-webhook-id", "x-slack-signature", "x-slack-request-timestamp", "x-twilio-signature",
    "i-twilio-idempotency-token", "x-signature", "x-timestamp", "content-type",
]
ALLOWED = {
    "missing_header": 400,
    "malformed_header": 400,
    "malformed_payload": 400,
    "invalid_signature": 401,
    "timestamp_out_of_tolerance": 401,
}

# Pieces that reach deeper branches than uniform text: versions, separators, digits, base64 and hex.
FRAGMENTS = st.sampled_from(
    ["v1,", "v1a,", "v0=", "v1=", "t=", "sha256=", "sha1=", ",", " ", "  ", "=", ".", str(NOW_UNIX),
     "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "0" * 64, "0" * 40, "QUJD", "==", "\x00", "é", "\udcff", "9" * 30]
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.lists(FRAGMENTS, max_size=12).map("".join),
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=80),
    st.builds(lambda piece, count: piece * count, FRAGMENTS, st.integers(100, 3000)),
)
HEADERS = st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=len(HEADER_NAMES))
BODIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=120).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from([b"a=1", b"&", b"%FF", b"%", b"+", b"=", b"bodySHA256"]), max_size=10).map(b"".join),
)
URLS = st.one_of(
    st.just(""),
    st.text(max_size=60),
    st.lists(FRAGMENTS | st.sampled_from(["?", "#", "bodySHA256=", "&", "http://[::1"]), max_size=8).map("".join),
)


def check_outcome(name: str, headers: dict[str, str], body: bytes, url: str) -> None:
    scheme = build_scheme(name, SECRETS[name], OPTIONS.get(name, {}))
    try:
        result = scheme.verify(Delivery(headers=headers, body=body, url=url), NOW)
    except VerificationError as exc:
        assert ALLOWED.get(exc.code) == exc.status, (exc.code, exc.status)
        assert exc.detail.endswith("."), exc.detail
        for secret in SECRETS[name]:
            assert secret not in exc.detail
    else:
        assert isinstance(result, VerifiedDelivery)


@pytest.mark.parametrize("name", sorted(SCHEMES))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=HEADERS, body=BODIES, url=URLS)
def test_verify_raises_only_verification_error(name: str, headers: dict[str, str], body: bytes, url: str) -> None:
    check_outcome(name, headers, body, url)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMES)), headers=HEADERS, body=BODIES, url=URLS)
def test_explain_never_raises(name: str, headers: dict[str, str], body: bytes, url: str) -> None:
    result = explain(name, SECRETS[name], OPTIONS.get(name, {}), Delivery(headers=headers, body=body, url=url), NOW)
    assert result.valid == (result.code is None)
    assert result.summary().startswith(("valid: ", "invalid: "))
