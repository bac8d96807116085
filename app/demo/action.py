"""Python port of the Auth0 post-login Action's body building, id derivation and signing.

`hooks_js/post-login.js` is the source of truth. This module produces the
same body bytes, `webhook-id` and `webhook-signature` for the same event and
send time, so the demo can push Auth0-shaped logins on a machine without
Node. `tests/demo/test_action_parity.py` runs both on the same events and
compares the output byte for byte.

The port covers only the pure functions. Delivery (time budget, retries) is
left to the caller.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ID_PREFIX = "login_"
# 56 hex characters (224 bits of SHA-256) keep `login_` + digest at 62 characters.
ID_DIGEST_HEX_CHARS = 56
ID_DERIVATION_VERSION = "hookledger.auth0.login.v1"

KIND_LOGIN = "login"
KIND_SILENT_LOGIN = "silent_login"
KIND_REFRESH = "refresh"
KIND_PASSWORD_GRANT = "password_grant"

REFRESH_PROTOCOL = "oauth2-refresh-token"
PASSWORD_PROTOCOL = "oauth2-password"
PASSWORD_GRANT_TYPES = frozenset({"password", "http://auth0.com/oauth/grant-type/password-realm"})

# The same ISO 8601 form that the Action accepts: a `Z` or `±HH:MM` offset is required.
ISO_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
# Times are kept only from 1970-01-01 up to, not including, 10000-01-01, as in the Action.
MAX_TIMESTAMP_MS = 253_402_300_800_000
# JavaScript's Number.isSafeInteger bound, which the Action applies to logins_count.
MAX_SAFE_INTEGER = 2**53 - 1

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class SignedDelivery:
    """One push as the Action sends it: the raw body and the three Standard Webhooks headers."""

    body: bytes
    webhook_id: str
    webhook_timestamp: int
    webhook_signature: str

    def headers(self) -> dict[str, str]:
        """Return the request headers, content type included."""
        return {
            "content-type": "application/json",
            "webhook-id": self.webhook_id,
            "webhook-timestamp": str(self.webhook_timestamp),
            "webhook-signature": self.webhook_signature,
        }


def _string_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _mapping_or_none(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _child(parent: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    return _mapping_or_none(parent.get(key)) if parent is not None else None


def _in_timestamp_range(ms: int) -> bool:
    return 0 <= ms < MAX_TIMESTAMP_MS


def _parse_iso_timestamp_ms(text: str) -> int | None:
    match = ISO_TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute = (int(part) for part in match.group(1, 2, 3, 4, 5))
    second = int(match.group(6)) if match.group(6) is not None else 0
    fraction = match.group(7)
    millisecond = int(fraction[:3].ljust(3, "0")) if fraction is not None else 0
    last_day = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
    if year < 1970 or not 1 <= day <= last_day or hour > 23 or minute > 59 or second > 59:
        return None

    offset = match.group(8)
    offset_minutes = 0
    if offset != "Z":
        offset_hours, offset_rest = int(offset[1:3]), int(offset[4:6])
        if offset_hours > 23 or offset_rest > 59:
            return None
        sign = -1 if offset[0] == "-" else 1
        offset_minutes = sign * (offset_hours * 60 + offset_rest)

    local = datetime(year, month, day, hour, minute, second, millisecond * 1000, tzinfo=UTC)
    ms = (local - EPOCH) // timedelta(milliseconds=1) - offset_minutes * 60_000
    return ms if _in_timestamp_range(ms) else None


def parse_timestamp_ms(value: Any) -> int | None:
    """Parse an ISO 8601 string, an aware datetime or epoch milliseconds into epoch ms, or None.

    A naive datetime is read as UTC. Numbers are truncated toward zero, as
    JavaScript's Date does.
    """
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        ms = (aware - EPOCH) // timedelta(milliseconds=1)
        return ms if _in_timestamp_range(ms) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        ms = int(value)
        return ms if _in_timestamp_range(ms) else None
    if isinstance(value, str):
        return _parse_iso_timestamp_ms(value)
    return None


def to_iso(ms: int) -> str:
    """Format epoch ms as JavaScript's `Date.prototype.toISOString` does."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _read_prompt(event: Mapping[str, Any]) -> list[str] | None:
    transaction = _mapping_or_none(event.get("transaction"))
    raw = transaction.get("prompt") if transaction is not None else None
    if isinstance(raw, list):
        return [item for item in raw if isinstance(item, str)]
    if isinstance(raw, str):
        return [item for item in raw.split(" ") if item != ""]
    query = _child(_mapping_or_none(event.get("request")), "query")
    if query is not None and isinstance(query.get("prompt"), str):
        return [item for item in query["prompt"].split(" ") if item != ""]
    return None


def classify_kind(event: Any) -> str:
    """Classify the flow that ran the trigger: login, silent_login, refresh or password_grant."""
    safe_event = _mapping_or_none(event) or {}
    transaction = _mapping_or_none(safe_event.get("transaction"))
    protocol = _string_or_none(transaction.get("protocol")) if transaction is not None else None
    if protocol == REFRESH_PROTOCOL:
        return KIND_REFRESH
    if protocol == PASSWORD_PROTOCOL:
        return KIND_PASSWORD_GRANT

    body = _child(_mapping_or_none(safe_event.get("request")), "body")
    grant_type = _string_or_none(body.get("grant_type")) if body is not None else None
    if protocol is None and grant_type == "refresh_token":
        return KIND_REFRESH
    if protocol is None and grant_type in PASSWORD_GRANT_TYPES:
        return KIND_PASSWORD_GRANT

    prompt = _read_prompt(safe_event)
    if prompt is not None and "none" in prompt:
        return KIND_SILENT_LOGIN
    return KIND_LOGIN


def _read_authentication_methods(
    event: Mapping[str, Any],
) -> tuple[list[dict[str, str | None]], int | None]:
    authentication = _mapping_or_none(event.get("authentication"))
    raw = authentication.get("methods") if authentication is not None else None
    methods: list[dict[str, str | None]] = []
    latest_ms: int | None = None
    for item in raw if isinstance(raw, list) else []:
        method = _mapping_or_none(item)
        if method is None:
            continue
        ms = parse_timestamp_ms(method.get("timestamp"))
        if ms is not None and (latest_ms is None or ms > latest_ms):
            latest_ms = ms
        methods.append(
            {
                "name": _string_or_none(method.get("name")),
                "timestamp": to_iso(ms) if ms is not None else None,
            }
        )
    return methods, latest_ms


@dataclass(frozen=True)
class _Identity:
    kind: str
    tenant: str | None
    transaction_id: str | None
    session_id: str | None
    user_id: str | None
    client_id: str | None
    protocol: str | None
    authenticated_at: str | None


def _read_identity(event: Any) -> _Identity:
    safe_event = _mapping_or_none(event) or {}
    transaction = _mapping_or_none(safe_event.get("transaction"))
    session = _mapping_or_none(safe_event.get("session"))
    user = _mapping_or_none(safe_event.get("user"))
    client = _mapping_or_none(safe_event.get("client"))
    tenant = _mapping_or_none(safe_event.get("tenant"))
    _, latest_ms = _read_authentication_methods(safe_event)

    def field(parent: Mapping[str, Any] | None, key: str) -> str | None:
        return _string_or_none(parent.get(key)) if parent is not None else None

    return _Identity(
        kind=classify_kind(safe_event),
        tenant=field(tenant, "id"),
        transaction_id=field(transaction, "id"),
        session_id=field(session, "id"),
        user_id=field(user, "user_id"),
        client_id=field(client, "client_id"),
        protocol=field(transaction, "protocol"),
        authenticated_at=to_iso(latest_ms) if latest_ms is not None else None,
    )


def _logins_count(stats: Mapping[str, Any]) -> int | None:
    value = stats.get("logins_count")
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) <= MAX_SAFE_INTEGER:
        return value
    return None


def build_login_event(event: Any, *, now: datetime | int) -> dict[str, Any]:
    """Build the pushed body with the Action's key order.

    `timestamp` is `now`, the send time, because Auth0 dates the tenant log
    record of the login at about that moment.
    """
    safe_event = _mapping_or_none(event) or {}
    now_ms = parse_timestamp_ms(now)
    if now_ms is None:
        raise ValueError(f"now {now!r} is not a time between 1970 and 9999")
    kind = classify_kind(safe_event)
    identity = _read_identity(safe_event)
    methods, _ = _read_authentication_methods(safe_event)
    client = _mapping_or_none(safe_event.get("client")) or {}
    connection = _mapping_or_none(safe_event.get("connection")) or {}
    request = _mapping_or_none(safe_event.get("request")) or {}
    stats = _mapping_or_none(safe_event.get("stats")) or {}

    return {
        "type": kind,
        "timestamp": to_iso(now_ms),
        "data": {
            "kind": kind,
            "user_id": identity.user_id,
            "client_id": identity.client_id,
            "client_name": _string_or_none(client.get("name")),
            "connection": _string_or_none(connection.get("name")),
            "connection_id": _string_or_none(connection.get("id")),
            "strategy": _string_or_none(connection.get("strategy")),
            "ip": _string_or_none(request.get("ip")),
            "user_agent": _string_or_none(request.get("user_agent")),
            "transaction_id": identity.transaction_id,
            "session_id": identity.session_id,
            "logins_count": _logins_count(stats),
            "protocol": identity.protocol,
            "prompt": _read_prompt(safe_event),
            "authentication_methods": methods,
            "authenticated_at": identity.authenticated_at,
            "tenant": identity.tenant,
        },
    }


def _escape_lone_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def to_js_json(value: Any) -> str:
    """Serialize `value` as JavaScript's `JSON.stringify` does, for strings, ints, lists and dicts.

    Both keep non-ASCII characters as they are and write control characters
    with the same escapes. `JSON.stringify` writes a lone UTF-16 surrogate as
    a `\\uXXXX` escape, which this function repeats.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return LONE_SURROGATE.sub(_escape_lone_surrogate, text)


def serialize_login_event(body: Mapping[str, Any]) -> bytes:
    """Serialize the body to the UTF-8 bytes that are signed and sent."""
    return to_js_json(body).encode("utf-8")


def derive_webhook_id(event: Any, *, random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """Derive the `webhook-id` from the login, as `deriveWebhookId` in the Action does.

    The stable identity is the transaction id, else (for `login` and
    `password_grant` only) the session id or the latest authentication method
    time. The id is `login_` + the first 56 hex characters of SHA-256 over the
    JSON array [version tag, tenant, anchor type, anchor value, user id,
    client id, protocol, authentication time]. Without a stable identity the
    id is random.
    """
    identity = _read_identity(event)
    anchor_type: str | None = None
    anchor_value: str | None = None
    if identity.transaction_id is not None:
        anchor_type, anchor_value = "transaction", identity.transaction_id
    elif identity.kind in (KIND_LOGIN, KIND_PASSWORD_GRANT):
        if identity.session_id is not None:
            anchor_type, anchor_value = "session", identity.session_id
        elif identity.authenticated_at is not None:
            anchor_type = "authentication"

    if anchor_type is None:
        return ID_PREFIX + random_bytes(ID_DIGEST_HEX_CHARS // 2).hex()

    material = to_js_json(
        [
            ID_DERIVATION_VERSION,
            identity.tenant,
            anchor_type,
            anchor_value,
            identity.user_id,
            identity.client_id,
            identity.protocol,
            identity.authenticated_at,
        ]
    )
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()
    return ID_PREFIX + digest[:ID_DIGEST_HEX_CHARS]


def decode_secret(secret: str) -> bytes:
    """Decode a Standard Webhooks secret: strip `whsec_`, base64-decode, accept missing padding.

    The decoding repeats Node's `Buffer.from(text, "base64")`: it accepts the
    URL-safe alphabet too, skips other characters and stops at the first `=`.
    """
    encoded = secret.strip().removeprefix("whsec_").split("=", 1)[0]
    standard = encoded.replace("-", "+").replace("_", "/")
    alphabet_only = re.sub(r"[^A-Za-z0-9+/]", "", standard)
    # One leftover character carries less than a byte, and Node drops it too.
    usable = alphabet_only[: len(alphabet_only) - (len(alphabet_only) % 4 == 1)]
    return base64.b64decode(usable + "=" * (-len(usable) % 4))


def sign_delivery(*, secret: str, webhook_id: str, timestamp: int, body: bytes | str) -> str:
    """Sign one delivery as Standard Webhooks v1 and return `v1,<base64 HMAC-SHA256>`."""
    key = decode_secret(secret)
    if not key:
        raise ValueError("the webhook secret is empty after removing the whsec_ prefix")
    raw = body.encode("utf-8") if isinstance(body, str) else body
    signed = f"{webhook_id}.{timestamp}.".encode() + raw
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_login(
    event: Any,
    *,
    secret: str,
    now: datetime | int,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> SignedDelivery:
    """Build, serialize and sign one login as the Action would send it at `now`."""
    now_ms = parse_timestamp_ms(now)
    if now_ms is None:
        raise ValueError(f"now {now!r} is not a time between 1970 and 9999")
    body = serialize_login_event(build_login_event(event, now=now_ms))
    webhook_id = derive_webhook_id(event, random_bytes=random_bytes)
    timestamp = now_ms // 1000
    signature = sign_delivery(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
    return SignedDelivery(
        body=body,
        webhook_id=webhook_id,
        webhook_timestamp=timestamp,
        webhook_signature=signature,
    )
