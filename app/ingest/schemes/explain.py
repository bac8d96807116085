"""Explain why one delivery verifies or not, step by step, for `hookledger verify`.

The explanation runs the same verifier as the ingest route, with a trace that
records each step: the timestamp check and every signature entry with its
outcome. It never shows a secret or an expected signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from app.ingest.pointer import MISSING, resolve_pointer
from app.ingest.schemes import build_scheme
from app.ingest.schemes.base import Delivery, ExtractionDefaults, VerificationError, VerifiedDelivery, body_sha256
from app.ingest.schemes.trace import Trace


@dataclass(frozen=True)
class Explanation:
    """The outcome of verifying one delivery, with the reasons."""

    scheme: str
    valid: bool
    steps: tuple[str, ...]
    code: str | None = None
    detail: str | None = None
    verified: VerifiedDelivery | None = None
    # The idempotency key the scheme's defaults give, and where it came from.
    idempotency_key: str | None = None
    key_origin: str | None = None

    def summary(self) -> str:
        """Return the one-line verdict: `valid: ...` or `invalid: <code>: <detail>`."""
        if not self.valid:
            return f"invalid: {self.code}: {self.detail}"
        if self.idempotency_key is None:
            return f"valid: {self.scheme} signature verified (key not found in the delivery)"
        return f"valid: {self.scheme} signature verified (key {self.idempotency_key} from {self.key_origin})"


def explain(
    scheme_name: str,
    secrets: Sequence[str],
    options: Mapping[str, Any],
    delivery: Delivery,
    now: datetime,
) -> Explanation:
    """Verify `delivery` with a freshly built scheme and return why it passes or fails.

    Raises `SchemeConfigError` when the scheme name, secrets or options are invalid.
    """
    scheme = build_scheme(scheme_name, secrets, options)
    trace = Trace()
    try:
        verified = scheme.verify(delivery, now, trace=trace)  # type: ignore[call-arg]
    except VerificationError as exc:
        return Explanation(
            scheme=scheme_name, valid=False, steps=tuple(trace.lines), code=exc.code, detail=exc.detail
        )
    key, origin = default_key(scheme.defaults, delivery, verified)
    return Explanation(
        scheme=scheme_name,
        valid=True,
        steps=tuple(trace.lines),
        verified=verified,
        idempotency_key=key,
        key_origin=origin,
    )


def default_key(
    defaults: ExtractionDefaults, delivery: Delivery, verified: VerifiedDelivery
) -> tuple[str | None, str | None]:
    """Return the idempotency key the scheme's defaults give, and where it came from.

    The order is the ingest route's: the KeySpec's headers, its JSON pointers
    into the body, the key that verification read from a header, and last the
    body hash.
    """
    spec = defaults.idempotency_key
    for name in spec.headers:
        value = delivery.headers.get(name, "").strip()
        if value:
            return value, f"header {name}"
    if spec.pointers:
        document = parse_body(delivery.body)
        for pointer in spec.pointers:
            value = resolve_pointer(document, pointer, MISSING) if document is not None else MISSING
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value), f"body field {pointer}"
    if verified.header_key is not None:
        return verified.header_key, "the signature headers"
    if spec.body_hash_fallback:
        return "sha256:" + body_sha256(delivery.body), "the body's SHA-256"
    return None, None


def parse_body(body: bytes) -> Any:
    """Parse a JSON or form-encoded body for key lookup; return None when it is neither."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return None
