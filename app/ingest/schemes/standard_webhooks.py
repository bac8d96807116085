"""Standard Webhooks (v1.0.0): HMAC-SHA256 `v1` and Ed25519 `v1a` signatures.

The sender signs `{webhook-id}.{webhook-timestamp}.{raw body}` and sends one
or more space-separated `version,base64-signature` entries in
`webhook-signature`, several while it rotates keys. A delivery is valid when
any `v1` entry matches any configured secret or any `v1a` entry matches any
configured public key. Entries with an unknown version or a malformed value
are skipped, never an error on their own. Svix sends the same scheme under
`svix-id`, `svix-timestamp` and `svix-signature`.

Secrets are `whsec_` plus base64 (the prefix and the base64 padding are
optional). A secret that starts with `whpk_` is an Ed25519 public key, so a
source that only receives `v1a` signatures can name its public keys in
`secrets_env` as well as in the `public_keys` option.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import field_validator

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
from app.ingest.schemes.digests import decode_base64, hmac_digest, matches
from app.ingest.schemes.headers import (
    check_tolerance,
    note_tolerance,
    parse_timestamp,
    require_header,
    show,
)
from app.ingest.schemes.keys import check_key
from app.ingest.schemes.trace import Trace, quiet

HEADER_SETS = (
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ("svix-id", "svix-timestamp", "svix-signature"),
)

VERSION_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,12}")

# More entries than any sender rotating keys produces; a longer list is garbage.
MAX_ENTRIES = 32

HMAC_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
ED25519_KEY_SIZE = 32


class StandardWebhooksOptions(TimestampOptions):
    """Options of the `standard-webhooks` and `svix` schemes."""

    # Ed25519 public keys (`whpk_` plus base64) that `v1a` entries are checked against.
    public_keys: tuple[str, ...] = ()

    @field_validator("public_keys", mode="before")
    @classmethod
    def _split_text(cls, value: Any) -> Any:
        # `hookledger verify --option public_keys=whpk_a,whpk_b` passes one string.
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split() if part)
        return value


def decode_unpadded_base64(text: str) -> bytes | None:
    """Decode base64 whose `=` padding may be missing; return None when it is not base64."""
    body = text.rstrip("=")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        return None


def decode_secret(position: int, scheme: str, secret: str) -> bytes:
    """Decode a `whsec_` secret to the HMAC key bytes."""
    body = secret.removeprefix("whsec_")
    key = decode_unpadded_base64(body) if body else None
    if not key:
        raise SchemeConfigError(
            f"secret {position} for scheme {scheme!r} is not 'whsec_' followed by base64; "
            "copy the signing secret exactly as the sender shows it."
        )
    return key


def decode_public_key(label: str, scheme: str, text: str) -> Ed25519PublicKey:
    """Decode a `whpk_` public key; `label` names where it was configured."""
    if text.startswith("whsk_"):
        raise SchemeConfigError(
            f"{label} for scheme {scheme!r} is an Ed25519 private key (whsk_); "
            "configure the sender's public key (whpk_) instead and keep the private key secret."
        )
    raw = decode_unpadded_base64(text.removeprefix("whpk_"))
    if raw is None or len(raw) != ED25519_KEY_SIZE:
        raise SchemeConfigError(
            f"{label} for scheme {scheme!r} is not 'whpk_' followed by the base64 of a "
            f"{ED25519_KEY_SIZE}-byte Ed25519 public key."
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def version_label(version: str) -> str:
    """Return a received version for a trace line: as is when it is a short token, else quoted."""
    return version if VERSION_TOKEN.fullmatch(version) else show(version, 12)


def pick_header_set(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """Return the header names in use: `webhook-*` unless only `svix-*` headers are present."""
    for names in HEADER_SETS:
        if any(name in headers for name in names):
            return names
    return HEADER_SETS[0]


@dataclass
class EntryTally:
    """Counts and the first match among the entries of one signature header."""

    well_formed: int = 0
    compared: int = 0
    skipped: int = 0
    match: str | None = None


class StandardWebhooksScheme(SchemeBase):
    """Standard Webhooks `v1` (HMAC-SHA256) and `v1a` (Ed25519) signatures."""

    name = "standard-webhooks"
    defaults = ExtractionDefaults(
        idempotency_key=KeySpec(headers=("webhook-id", "svix-id")),
        event_type_pointer="/type",
        occurred_at_pointer="/timestamp",
    )
    options_model = StandardWebhooksOptions

    def __init__(self, secrets: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(secrets, options)
        self.hmac_keys: list[tuple[str, bytes]] = []
        self.public_keys: list[tuple[str, Ed25519PublicKey]] = []
        for position, secret in enumerate(self.secrets, start=1):
            label = f"secret {position}"
            if secret.startswith(("whpk_", "whsk_")):
                self.public_keys.append((label, decode_public_key(label, self.name, secret)))
            else:
                self.hmac_keys.append((label, decode_secret(position, self.name, secret)))
        for position, text in enumerate(self.options.public_keys, start=1):
            label = f"public key {position}"
            self.public_keys.append((label, decode_public_key(f"option public_keys entry {position}", self.name, text)))

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the signature entries, then the timestamp; return the message id as key."""
        trace = trace or quiet()
        id_name, timestamp_name, signature_name = pick_header_set(delivery.headers)
        hint = f"send the {id_name}, {timestamp_name} and {signature_name} headers that the sender produced."
        message_id = require_header(delivery.headers, id_name, hint=hint)
        timestamp_text = require_header(delivery.headers, timestamp_name, hint=hint)
        signature_header = require_header(delivery.headers, signature_name, hint=hint)
        check_message_id(id_name, message_id)
        timestamp = parse_timestamp(timestamp_name, timestamp_text)

        tolerance = self.options.tolerance_seconds
        note_tolerance(timestamp_name, timestamp, now, tolerance, trace)

        signed = f"{message_id}.{timestamp_text}.".encode() + delivery.body
        tally = self._match_entries(signature_name, signature_header, signed, trace)
        # A stale timestamp wins over the signature result, as in the reference libraries.
        signed_at = check_tolerance(timestamp_name, timestamp, now, tolerance)
        if tally.match is None:
            raise self._no_match_error(signature_name, tally)
        return VerifiedDelivery(
            signed_at=signed_at,
            header_key=message_id,
            details={"matched": tally.match, "signed_at_unix": timestamp},
        )

    def _match_entries(self, header: str, value: str, signed: bytes, trace: Trace) -> EntryTally:
        entries = value.split()
        if len(entries) > MAX_ENTRIES:
            raise VerificationError(
                "malformed_header",
                f"Header {header} has {len(entries)} signature entries, more than the {MAX_ENTRIES} "
                "accepted; send the header that the sender produced, unchanged.",
                status=400,
                header=header,
            )
        tally = EntryTally()
        expected: list[tuple[str, bytes]] | None = None
        for number, entry in enumerate(entries, start=1):
            version, comma, signature = entry.partition(",")
            if not comma:
                trace.note(f"entry {number}: no comma between version and signature, skipped")
                tally.skipped += 1
                continue
            tally.well_formed += 1
            if version == "v1":
                if expected is None:
                    expected = [(label, hmac_digest(key, signed)) for label, key in self.hmac_keys]
                found = self._check_v1(number, signature, expected, tally, trace)
            elif version == "v1a":
                found = self._check_v1a(number, signature, signed, tally, trace)
            else:
                trace.note(f"entry {number} ({version_label(version)}): unknown version, skipped")
                tally.skipped += 1
                found = None
            if found is not None and tally.match is None:
                tally.match = found
                if not trace.enabled:
                    break
        return tally

    def _check_v1(
        self, number: int, signature: str, expected: list[tuple[str, bytes]], tally: EntryTally, trace: Trace
    ) -> str | None:
        raw = decode_base64(signature)
        if raw is None or len(raw) != HMAC_SIZE:
            trace.note(f"entry {number} (v1): not the base64 of a {HMAC_SIZE}-byte HMAC-SHA256, skipped")
            tally.skipped += 1
            return None
        if not expected:
            trace.note(f"entry {number} (v1): skipped, no whsec_ secret is configured")
            tally.skipped += 1
            return None
        tally.compared += 1
        for label, digest in expected:
            if matches(digest, raw):
                trace.note(f"entry {number} (v1): signature matches {label}")
                return f"v1 {label}"
        trace.note(f"entry {number} (v1): signature does not match any configured secret")
        return None

    def _check_v1a(self, number: int, signature: str, signed: bytes, tally: EntryTally, trace: Trace) -> str | None:
        if not self.public_keys:
            trace.note(f"entry {number} (v1a): skipped, no public key is configured (option public_keys)")
            tally.skipped += 1
            return None
        raw = decode_base64(signature)
        if raw is None or len(raw) != ED25519_SIGNATURE_SIZE:
            trace.note(f"entry {number} (v1a): not the base64 of a {ED25519_SIGNATURE_SIZE}-byte Ed25519 signature, skipped")
            tally.skipped += 1
            return None
        tally.compared += 1
        for label, key in self.public_keys:
            try:
                key.verify(raw, signed)
            except InvalidSignature:
                continue
            trace.note(f"entry {number} (v1a): signature matches {label}")
            return f"v1a {label}"
        trace.note(f"entry {number} (v1a): signature does not match any configured public key")
        return None

    def _no_match_error(self, header: str, tally: EntryTally) -> VerificationError:
        if tally.well_formed == 0:
            return VerificationError(
                "malformed_header",
                f"Header {header} contains no entry of the form 'v1,<base64 signature>'; "
                "send the header that the sender produced, unchanged.",
                status=400,
                header=header,
            )
        return VerificationError(
            "invalid_signature",
            f"No entry in header {header} matches the body with a configured key "
            f"({tally.compared} compared, {tally.skipped} skipped); check that the source's secrets "
            "are current and that the body reaches the server byte for byte as sent.",
            header=header,
        )


def check_message_id(name: str, value: str) -> None:
    """Reject message ids that cannot be idempotency keys or that contain a dot.

    A dot in the id would let `id.timestamp.body` split in more than one way.
    """
    check_key(name, value)
    if "." in value:
        raise VerificationError(
            "malformed_header",
            f"Header {name} value {show(value)} contains a '.', which makes the signed content "
            "ambiguous; the sender must use ids without dots.",
            status=400,
            header=name,
        )

