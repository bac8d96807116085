"""Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{raw body}`.

The key is the app's signing secret as UTF-8. Bodies are JSON (Events API) or
form-encoded (slash commands, interactivity); both are verified as raw bytes.
Events API payloads carry `event_id`; other bodies are keyed by their hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.ingest.schemes.base import (
    Delivery,
    ExtractionDefaults,
    KeySpec,
    SchemeBase,
    TimestampOptions,
    VerificationError,
    VerifiedDelivery,
)
from app.ingest.schemes.digests import decode_hex, find_matching_key
from app.ingest.schemes.headers import check_tolerance, note_tolerance, parse_timestamp, require_header, show
from app.ingest.schemes.trace import Trace, quiet

SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
HINT = "send the X-Slack-Signature and X-Slack-Request-Timestamp headers that Slack produced."


class SlackScheme(SchemeBase):
    """Slack request signatures (version v0)."""

    name = "slack"
    defaults = ExtractionDefaults(
        idempotency_key=KeySpec(pointers=("/event_id",), body_hash_fallback=True),
        # Events API callbacks, then slash commands, then the url_verification handshake.
        event_type_pointer=("/event/type", "/command", "/type"),
        subject_pointer="/event/user",
        # Unix seconds.
        occurred_at_pointer="/event_time",
    )
    options_model = TimestampOptions

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the `v0` signature, then the request timestamp."""
        trace = trace or quiet()
        signature = require_header(delivery.headers, SIGNATURE_HEADER, hint=HINT)
        timestamp_text = require_header(delivery.headers, TIMESTAMP_HEADER, hint=HINT)
        timestamp = parse_timestamp(TIMESTAMP_HEADER, timestamp_text)
        tolerance = self.options.tolerance_seconds
        note_tolerance(TIMESTAMP_HEADER, timestamp, now, tolerance, trace)

        version, equals, digest = signature.partition("=")
        received = decode_hex(digest) if equals and version == "v0" else None
        if received is None or len(received) != 32:
            check_tolerance(TIMESTAMP_HEADER, timestamp, now, tolerance)
            raise VerificationError(
                "malformed_header",
                f"Header {SIGNATURE_HEADER} value {show(signature)} is not 'v0=' followed by a 64-digit "
                "hex HMAC-SHA256; send the header that Slack produced, unchanged.",
                status=400,
                header=SIGNATURE_HEADER,
            )
        signed = b"v0:" + timestamp_text.encode() + b":" + delivery.body
        match = find_matching_key(self.utf8_keys(), signed, received)
        trace.note(
            f"{SIGNATURE_HEADER}: signature matches {match}"
            if match
            else f"{SIGNATURE_HEADER}: signature does not match any configured secret"
        )
        signed_at = check_tolerance(TIMESTAMP_HEADER, timestamp, now, tolerance)
        if match is None:
            raise VerificationError(
                "invalid_signature",
                f"Header {SIGNATURE_HEADER} does not match the body with a configured secret; check that "
                "the source's secrets include the app's current signing secret and that the body reaches "
                "the server byte for byte as sent.",
                header=SIGNATURE_HEADER,
            )
        return VerifiedDelivery(signed_at=signed_at, details={"matched": match, "signed_at_unix": timestamp})

    def handshake_response(self, payload: Any) -> dict[str, Any] | None:
        """Return the reply to Slack's `url_verification` request, which gets this reply and is not stored.

        Slack sends it, signed like any event, when an Events API request URL is
        set, and expects the `challenge` value back.
        """
        if isinstance(payload, dict) and payload.get("type") == "url_verification":
            challenge = payload.get("challenge")
            if isinstance(challenge, str):
                return {"challenge": challenge}
        return None
