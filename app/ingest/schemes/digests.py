"""HMAC computation and strict decoding of received signatures.

Received signatures are decoded to bytes before comparing, because
`hmac.compare_digest` raises `TypeError` on non-ASCII strings and header
values are arbitrary text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Literal

Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]

DIGEST_SIZES: dict[str, int] = {"sha1": 20, "sha256": 32, "sha512": 64}

HEX = re.compile(r"[0-9a-fA-F]+")
BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def hmac_digest(key: bytes, message: bytes, algorithm: Algorithm = "sha256") -> bytes:
    """Return the raw HMAC of `message` under `key`."""
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def decode_hex(value: str) -> bytes | None:
    """Decode a hex signature; return None when it is not hex."""
    if not HEX.fullmatch(value) or len(value) % 2:
        return None
    return bytes.fromhex(value)


def decode_base64(value: str) -> bytes | None:
    """Decode a padded standard-alphabet base64 signature; return None when it is not one."""
    if not BASE64.fullmatch(value) or len(value) % 4:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return None


def decode_signature(value: str, encoding: Encoding) -> bytes | None:
    """Decode a received signature in `encoding`; return None when it does not parse."""
    if encoding == "hex":
        return decode_hex(value)
    return decode_base64(value)


def matches(expected: bytes, received: bytes) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(expected, received)


def find_matching_key(
    keys: Sequence[tuple[str, bytes]], message: bytes, received: bytes, algorithm: Algorithm = "sha256"
) -> str | None:
    """Return the label of the first key whose HMAC of `message` equals `received`, else None."""
    for label, key in keys:
        if matches(hmac_digest(key, message, algorithm), received):
            return label
    return None
