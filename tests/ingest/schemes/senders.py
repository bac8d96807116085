"""Sign deliveries the way each sender documents it, independently of the verifiers under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NOW_UNIX = int(NOW.timestamp())

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_OLD_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
STANDARD_PUBLIC_KEY = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
STANDARD_PRIVATE_KEY = (
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def mac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def standard_v1(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """Return one `v1,<base64>` entry."""
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    return "v1," + b64(mac(key, f"{msg_id}.{timestamp}.".encode() + body))


def standard_v1a(msg_id: str, timestamp: int | str, body: bytes) -> str:
    """Return one `v1a,<base64>` entry signed with the Ed25519 test key pair."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = base64.b64decode(STANDARD_PRIVATE_KEY.removeprefix("whsk_"))[:32]
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return "v1a," + b64(key.sign(f"{msg_id}.{timestamp}.".encode() + body))


def standard_headers(
    body: bytes, *, secret: str = STANDARD_SECRET, msg_id: str = "msg_1", timestamp: int = NOW_UNIX, prefix: str = "webhook"
) -> dict[str, str]:
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": standard_v1(secret, msg_id, timestamp, body),
    }


def stripe_v1(secret: str, timestamp: int, body: bytes) -> str:
    return mac(secret.encode(), f"{timestamp}.".encode() + body).hex()


def stripe_headers(body: bytes, *secrets: str, timestamp: int = NOW_UNIX) -> dict[str, str]:
    items = [f"t={timestamp}"] + [f"v1={stripe_v1(secret, timestamp, body)}" for secret in secrets]
    return {"stripe-signature": ",".join(items)}


def github_headers(secret: str, body: bytes, *, delivery: str | None = "72d3162e-cc78-11e3-81ab-4c9367dc0958") -> dict[str, str]:
    headers = {"x-hub-signature-256": "sha256=" + mac(secret.encode(), body).hex(), "x-github-event": "push"}
    if delivery is not None:
        headers["x-github-delivery"] = delivery
    return headers


def shopify_headers(secret: str, body: bytes) -> dict[str, str]:
    return {
        "x-shopify-hmac-sha256": b64(mac(secret.encode(), body)),
        "x-shopify-topic": "orders/create",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
    }


def slack_headers(secret: str, body: bytes, timestamp: int = NOW_UNIX) -> dict[str, str]:
    digest = mac(secret.encode(), f"v0:{timestamp}:".encode() + body).hex()
    return {"x-slack-signature": f"v0={digest}", "x-slack-request-timestamp": str(timestamp)}


def twilio_signature(token: str, url: str, parameters: Iterable[tuple[str, str]] = ()) -> str:
    text = url + "".join(name + value for name, value in sorted(parameters))
    return b64(mac(token.encode(), text.encode(), "sha1"))
