"""Idempotency keys read from request headers."""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.ingest.schemes.base import VerificationError
from app.ingest.schemes.headers import show

# The ledger's idempotency_key column is VARCHAR(255).
MAX_KEY_CHARS = 255

# Printable ASCII without white space: ids such as msg_..., evt_... or GUIDs.
KEY_TEXT = re.compile(r"[\x21-\x7e]+")


def check_key(name: str, value: str) -> str:
    """Return `value` as an idempotency key, or raise `malformed_header`."""
    if len(value) > MAX_KEY_CHARS or not KEY_TEXT.fullmatch(value):
        raise VerificationError(
            "malformed_header",
            f"Header {name} value {show(value)} is not a usable event id: it must be 1 to "
            f"{MAX_KEY_CHARS} printable ASCII characters without spaces; send the id the sender produced.",
            status=400,
            header=name,
        )
    return value


def optional_key(headers: Mapping[str, str], name: str) -> str | None:
    """Return the idempotency key in header `name`, None when the header is absent or empty."""
    value = headers.get(name)
    if value is None or not value.strip():
        return None
    return check_key(name, value.strip())
