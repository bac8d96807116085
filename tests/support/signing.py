"""Sign test deliveries the way senders do, independently of the verifiers under test."""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def standard_webhooks_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Return Standard Webhooks v1 headers for `body`."""
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
        "content-type": "application/json",
    }
