"""A configurable HMAC scheme for senders without a built-in scheme.

The source names the signature header and how its value is written:

    scheme = "hmac"
    signature_header = "X-Signature"
    prefix = "sha256="            # text before the digest, default none
    algorithm = "sha256"          # sha1, sha256 or sha512
    encoding = "hex"              # hex or base64
    signed_content = "body"       # or "timestamp.body"
    timestamp_header = "X-Timestamp"   # required with "timestamp.body"
    separator = "."               # between timestamp and body
    tolerance_seconds = 300

With `signed_content = "timestamp.body"` the signed bytes are the timestamp
header's value, the separator and the raw body, and the timestamp must be
whole Unix seconds within the tolerance. The key is each secret as UTF-8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from app.ingest.schemes.base import (
    DEFAULT_TOLERANCE_SECONDS,
    MAX_TOLERANCE_SECONDS,
    Delivery,
    ExtractionDefaults,
    KeySpec,
    SchemeBase,
    SchemeOptions,
    VerificationError,
    VerifiedDelivery,
)
from app.ingest.schemes.digests import DIGEST_SIZES, Algorithm, Encoding, decode_signature, find_matching_key
from app.ingest.schemes.headers import check_tolerance, note_tolerance, parse_timestamp, require_header
from app.ingest.schemes.trace import Trace, quiet

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class GenericHmacOptions(SchemeOptions):
    """Options of the `hmac` scheme."""

    signature_header: str = Field(pattern=HEADER_NAME)
    prefix: str = ""
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    signed_content: Literal["body", "timestamp.body"] = "body"
    timestamp_header: str | None = Field(default=None, pattern=HEADER_NAME)
    separator: str = "."
    tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1, le=MAX_TOLERANCE_SECONDS)

    @field_validator("signature_header", "timestamp_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @model_validator(mode="after")
    def _check_timestamp(self) -> GenericHmacOptions:
        if self.signed_content == "timestamp.body" and self.timestamp_header is None:
            raise ValueError("signed_content 'timestamp.body' needs option timestamp_header.")
        if self.signed_content == "body" and self.timestamp_header is not None:
            raise ValueError("timestamp_header is only read with signed_content = 'timestamp.body'.")
        return self


class GenericHmacScheme(SchemeBase):
    """An HMAC signature in one header, described by the source's options."""

    name = "hmac"
    defaults = ExtractionDefaults(idempotency_key=KeySpec(body_hash_fallback=True))
    options_model = GenericHmacOptions

    def __init__(self, secrets: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(secrets, options)
        self.keys = self.utf8_keys()

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the configured signature header, and the timestamp where one is signed."""
        trace = trace or quiet()
        options: GenericHmacOptions = self.options
        header = options.signature_header
        hint = f"send the {header} header that the sender produced."
        value = require_header(delivery.headers, header, hint=hint)

        timestamp: int | None = None
        signed = delivery.body
        if options.timestamp_header is not None:
            timestamp_text = require_header(delivery.headers, options.timestamp_header, hint=hint)
            timestamp = parse_timestamp(options.timestamp_header, timestamp_text)
            note_tolerance(options.timestamp_header, timestamp, now, options.tolerance_seconds, trace)
            signed = (timestamp_text + options.separator).encode() + delivery.body

        received = decode_signature(value.removeprefix(options.prefix), options.encoding)
        size = DIGEST_SIZES[options.algorithm]
        if not value.startswith(options.prefix) or received is None or len(received) != size:
            if options.timestamp_header is not None and timestamp is not None:
                check_tolerance(options.timestamp_header, timestamp, now, options.tolerance_seconds)
            raise VerificationError(
                "malformed_header",
                f"Header {header} is not {options.prefix!r} followed by the {options.encoding} of a "
                f"{size}-byte HMAC-{options.algorithm.upper()}; check the source's prefix, algorithm "
                "and encoding options against what the sender sends.",
                status=400,
                header=header,
            )
        match = find_matching_key(self.keys, signed, received, options.algorithm)
        trace.note(f"{header}: signature matches {match}" if match else f"{header}: signature does not match any configured secret")

        signed_at = None
        if options.timestamp_header is not None and timestamp is not None:
            signed_at = check_tolerance(options.timestamp_header, timestamp, now, options.tolerance_seconds)
        if match is None:
            raise VerificationError(
                "invalid_signature",
                f"Header {header} does not match the {options.signed_content} with a configured secret; "
                "check the source's secrets and options and that the body reaches the server byte for "
                "byte as sent.",
                header=header,
            )
        return VerifiedDelivery(signed_at=signed_at, details={"matched": match})
