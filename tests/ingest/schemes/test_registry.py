"""`build_scheme`: the registry, secrets and option validation."""

from __future__ import annotations

import pytest

from app.ingest.schemes import SCHEMES, ExtractionDefaults, SchemeConfigError, build_scheme
from tests.ingest.schemes.senders import STANDARD_SECRET

# The options each scheme needs to build.
REQUIRED_OPTIONS = {
    "twilio": {"public_url": "https://hooks.example.com/v1/hooks/twilio"},
    "hmac": {"signature_header": "X-Signature"},
}
TIMESTAMP_SCHEMES = {"standard-webhooks", "svix", "stripe", "slack", "hmac"}
LOADER_KEYS = [
    "scheme",
    "secrets_env",
    "idempotency_key_header",
    "idempotency_key_pointer",
    "event_type_pointer",
    "subject_pointer",
    "occurred_at_pointer",
    "max_body_bytes",
    "decompress",
    "max_decompressed_bytes",
    "reconciliation",
]


def build(name: str, secrets=(STANDARD_SECRET,), **options):
    return build_scheme(name, list(secrets), {**REQUIRED_OPTIONS.get(name, {}), **options})


def test_registry_names() -> None:
    assert set(SCHEMES) == {"standard-webhooks", "svix", "stripe", "github", "shopify", "slack", "twilio", "hmac"}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_each_scheme_builds_with_defaults(name: str) -> None:
    scheme = build(name)
    assert scheme.name == name
    assert isinstance(scheme.defaults, ExtractionDefaults)


def test_unknown_scheme_lists_known() -> None:
    with pytest.raises(SchemeConfigError) as caught:
        build_scheme("paypal", ["x"], {})
    assert "'paypal' is unknown" in str(caught.value)
    for name in SCHEMES:
        assert name in str(caught.value)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_no_secrets(name: str) -> None:
    with pytest.raises(SchemeConfigError, match="at least one secret"):
        build(name, secrets=())


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_empty_secret(name: str) -> None:
    with pytest.raises(SchemeConfigError, match="secret 2 .* is empty"):
        build(name, secrets=(STANDARD_SECRET, "  \n"))


def test_secrets_are_stripped() -> None:
    assert build("github", secrets=(" s3cret \n",)).secrets == ("s3cret",)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_unknown_option_is_named(name: str) -> None:
    with pytest.raises(SchemeConfigError, match="option 'colour' is unknown"):
        build(name, colour="blue")


@pytest.mark.parametrize("name", sorted(SCHEMES))
@pytest.mark.parametrize("key", LOADER_KEYS)
def test_loader_keys_are_not_scheme_options(name: str, key: str) -> None:
    with pytest.raises(SchemeConfigError, match=f"option '{key}' is unknown"):
        build(name, **{key: "x"})


@pytest.mark.parametrize("name", sorted(TIMESTAMP_SCHEMES))
def test_tolerance_option(name: str) -> None:
    assert build(name, tolerance_seconds=600).options.tolerance_seconds == 600
    assert build(name, tolerance_seconds="60").options.tolerance_seconds == 60
    for invalid in ("soon", 0, 8 * 24 * 3600):
        with pytest.raises(SchemeConfigError, match="tolerance_seconds"):
            build(name, tolerance_seconds=invalid)


@pytest.mark.parametrize("name", sorted(set(SCHEMES) - TIMESTAMP_SCHEMES))
def test_tolerance_option_only_where_timestamp_signed(name: str) -> None:
    with pytest.raises(SchemeConfigError, match="tolerance_seconds"):
        build(name, tolerance_seconds=600)


def test_invalid_option_value_is_named() -> None:
    with pytest.raises(SchemeConfigError, match="option 'allow_sha1' for scheme 'github' is invalid"):
        build("github", allow_sha1="maybe")
