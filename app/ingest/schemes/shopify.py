"""Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>`.

The key is the app's client secret as UTF-8. Shopify signs no timestamp. The
idempotency key is `X-Shopify-Webhook-Id`, which is the same on every retry of
one delivery. With option `key_header = "x-shopify-event-id"` the event id is
the key instead, so the copies that several subscriptions receive count once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import field_validator

from app.ingest.schemes.base import (
    Delivery,
    ExtractionDefaults,
    KeySpec,
    SchemeBase,
    SchemeOptions,
    VerificationError,
    VerifiedDelivery,
)
from app.ingest.schemes.digests import decode_base64, find_matching_key
from app.ingest.schemes.headers import require_header
from app.ingest.schemes.keys import optional_key
from app.ingest.schemes.trace import Trace, quiet

HEADER = "x-shopify-hmac-sha256"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
EVENT_ID_HEADER = "x-shopify-event-id"


class ShopifyOptions(SchemeOptions):
    """Options of the `shopify` scheme."""

    # Header whose value is the idempotency key.
    key_header: Literal["x-shopify-webhook-id", "x-shopify-event-id"] = WEBHOOK_ID_HEADER

    @field_validator("key_header", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def shopify_defaults(key_header: str) -> ExtractionDefaults:
    """Return the extraction defaults for a source keyed by `key_header`."""
    return ExtractionDefaults(
        idempotency_key=KeySpec(headers=(key_header,), body_hash_fallback=True),
        event_type_header="x-shopify-topic",
        event_type_pointer=None,
        occurred_at_pointer=None,
    )


class ShopifyScheme(SchemeBase):
    """Shopify webhook signatures."""

    name = "shopify"
    defaults = shopify_defaults(WEBHOOK_ID_HEADER)
    options_model = ShopifyOptions

    def __init__(self, secrets: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(secrets, options)
        self.key_header: str = self.options.key_header
        # The instance attribute shadows the class default, so the configured key header reaches the loader.
        self.defaults = shopify_defaults(self.key_header)  # type: ignore[misc]

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the body's HMAC; return the configured id header as key when present."""
        trace = trace or quiet()
        value = require_header(
            delivery.headers, HEADER, hint="send the X-Shopify-Hmac-Sha256 header that Shopify produced."
        )
        received = decode_base64(value)
        if received is None or len(received) != 32:
            raise VerificationError(
                "malformed_header",
                f"Header {HEADER} is not the base64 of a 32-byte HMAC-SHA256; "
                "send the header that Shopify produced, unchanged.",
                status=400,
                header=HEADER,
            )
        match = find_matching_key(self.utf8_keys(), delivery.body, received)
        if match is None:
            trace.note(f"{HEADER}: signature does not match any configured secret")
            raise VerificationError(
                "invalid_signature",
                f"Header {HEADER} does not match the body with a configured secret; check that the "
                "source's secrets include the app's current client secret and that the body reaches "
                "the server byte for byte as sent.",
                header=HEADER,
            )
        trace.note(f"{HEADER}: signature matches {match}")
        return VerifiedDelivery(header_key=optional_key(delivery.headers, self.key_header), details={"matched": match})
