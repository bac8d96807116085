"""Signature schemes, one module each, and the registry the configuration loader uses.

`build_scheme(name, secrets, options)` returns a configured verifier;
`verify(delivery, now)` on it returns a `VerifiedDelivery` or raises
`VerificationError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.ingest.schemes.base import (
    Delivery,
    ExtractionDefaults,
    KeySpec,
    Scheme,
    SchemeBase,
    SchemeConfigError,
    VerificationError,
    VerifiedDelivery,
    check_secrets,
)
from app.ingest.schemes.generic_hmac import GenericHmacScheme
from app.ingest.schemes.github import GitHubScheme
from app.ingest.schemes.shopify import ShopifyScheme
from app.ingest.schemes.slack import SlackScheme
from app.ingest.schemes.standard_webhooks import StandardWebhooksScheme
from app.ingest.schemes.stripe import StripeScheme
from app.ingest.schemes.svix import SvixScheme
from app.ingest.schemes.twilio import TwilioScheme

SCHEMES: dict[str, type[SchemeBase]] = {
    "standard-webhooks": StandardWebhooksScheme,
    "svix": SvixScheme,
    "stripe": StripeScheme,
    "github": GitHubScheme,
    "shopify": ShopifyScheme,
    "slack": SlackScheme,
    "twilio": TwilioScheme,
    "hmac": GenericHmacScheme,
}


def build_scheme(name: str, secrets: Sequence[str], options: Mapping[str, Any]) -> Scheme:
    """Return scheme `name` configured with `secrets` and `options`; raise `SchemeConfigError`.

    Secrets are stripped of surrounding white space; none, or an empty one, is an error.
    """
    scheme_class = SCHEMES.get(name)
    if scheme_class is None:
        known = ", ".join(sorted(SCHEMES))
        raise SchemeConfigError(f"scheme {name!r} is unknown; known schemes: {known}.")
    return scheme_class(check_secrets(name, secrets), options)


__all__ = [
    "SCHEMES",
    "Delivery",
    "ExtractionDefaults",
    "KeySpec",
    "Scheme",
    "SchemeConfigError",
    "VerificationError",
    "VerifiedDelivery",
    "build_scheme",
]
