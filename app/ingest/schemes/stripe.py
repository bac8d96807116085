"""Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`.

Stripe signs `{t}.{raw body}` with HMAC-SHA256 and sends the hex digest as
`v1`. While an endpoint secret is being rolled, it sends one `v1` per active
secret. The key is the whole `whsec_...` string as UTF-8, not base64-decoded
as in Standard Webhooks. `v0` and unknown schemes are ignored so that a
delivery cannot be downgraded to a weaker scheme. Unlike stripe-python, which
only rejects old timestamps, the tolerance applies in both directions.

NOTE: a retry with the same `evt_` id and a different body is a 409
idempotency conflict, as for every push. Stripe event objects carry
`pending_webhooks`. Whether Stripe serializes the event again for each retry,
so that this count changes between attempts, has not been checked against a
real Stripe account. If it does, such retries get 409s instead of duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.ingest.schemes.base import (
    Delivery,
    ExtractionDefaults,
    KeySpec,
    SchemeBase,
    SchemeConfigError,
    TimestampOptions,
    VerificationError,
    VerifiedDelivery,
)
from app.ingest.schemes.digests import decode_hex, hmac_digest, matches
from app.ingest.schemes.headers import check_tolerance, note_tolerance, parse_timestamp, require_header, show
from app.ingest.schemes.trace import Trace, quiet

HEADER = "stripe-signature"
HINT = "send the Stripe-Signature header that Stripe produced, unchanged."

# Stripe sends one v1 per active secret plus at most a v0; more items are garbage.
MAX_ITEMS = 32


class StripeScheme(SchemeBase):
    """Stripe webhook signatures (scheme v1)."""

    name = "stripe"
    defaults = ExtractionDefaults(
        idempotency_key=KeySpec(pointers=("/id",)),
        event_type_pointer="/type",
        # Unix seconds.
        occurred_at_pointer="/created",
    )
    options_model = TimestampOptions

    def __init__(self, secrets: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(secrets, options)
        for position, secret in enumerate(self.secrets, start=1):
            if any(character.isspace() for character in secret):
                raise SchemeConfigError(
                    f"secret {position} for scheme 'stripe' contains white space; "
                    "copy the endpoint's signing secret (whsec_...) again without spaces or line breaks."
                )

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the `v1` signatures over `t.body`, then the timestamp `t`."""
        trace = trace or quiet()
        value = require_header(delivery.headers, HEADER, hint=HINT)
        timestamp_text, signatures = parse_header(value, trace)
        timestamp = parse_timestamp(HEADER, timestamp_text)
        tolerance = self.options.tolerance_seconds
        note_tolerance(HEADER, timestamp, now, tolerance, trace)

        if not signatures:
            check_tolerance(HEADER, timestamp, now, tolerance)
            raise VerificationError(
                "invalid_signature",
                f"Header {HEADER} contains no v1 signature (v0 and other schemes are ignored); "
                "send the header that Stripe produced, unchanged.",
                header=HEADER,
            )
        signed = timestamp_text.encode() + b"." + delivery.body
        expected = [(label, hmac_digest(key, signed)) for label, key in self.utf8_keys()]
        match = None
        for number, signature in signatures:
            raw = decode_hex(signature)
            if raw is None or len(raw) != 32:
                trace.note(f"item {number} (v1): not a 64-digit hex HMAC-SHA256, skipped")
                continue
            found = next((label for label, digest in expected if matches(digest, raw)), None)
            if found is None:
                trace.note(f"item {number} (v1): signature does not match any configured secret")
                continue
            trace.note(f"item {number} (v1): signature matches {found}")
            match = match or found
            if not trace.enabled:
                break

        signed_at = check_tolerance(HEADER, timestamp, now, tolerance)
        if match is None:
            raise VerificationError(
                "invalid_signature",
                f"No v1 signature in header {HEADER} matches the body with a configured secret; check "
                "that the source's secrets are this endpoint's current signing secrets and that the body "
                "reaches the server byte for byte as sent.",
                header=HEADER,
            )
        return VerifiedDelivery(signed_at=signed_at, details={"matched": f"v1 {match}", "signed_at_unix": timestamp})


def parse_header(value: str, trace: Trace) -> tuple[str, list[tuple[int, str]]]:
    """Split `t=...,v1=...` into the timestamp text and the numbered v1 values."""
    items = value.split(",")
    if len(items) > MAX_ITEMS:
        raise VerificationError(
            "malformed_header",
            f"Header {HEADER} has {len(items)} items, more than the {MAX_ITEMS} accepted; {HINT}",
            status=400,
            header=HEADER,
        )
    timestamps: list[str] = []
    signatures: list[tuple[int, str]] = []
    for number, item in enumerate(items, start=1):
        key, equals, item_value = item.partition("=")
        key, item_value = key.strip(), item_value.strip()
        if not equals:
            trace.note(f"item {number}: no '=' between scheme and value, skipped")
        elif key == "t":
            timestamps.append(item_value)
        elif key == "v1":
            signatures.append((number, item_value))
        else:
            trace.note(f"item {number} ({show(key, 12)}): not scheme v1, ignored")
    if len(timestamps) != 1:
        problem = "has no t= timestamp" if not timestamps else "has more than one t= timestamp"
        raise VerificationError(
            "malformed_header", f"Header {HEADER} {problem}; {HINT}", status=400, header=HEADER
        )
    return timestamps[0], signatures
