"""Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 keyed with the account's Auth Token.

For form-encoded requests Twilio signs the full URL it called followed by
every POST parameter as `name + value`, sorted by name (and by value within a
repeated name). For JSON requests it adds a `bodySHA256` query parameter, the
hex SHA-256 of the raw body, and signs the URL alone.

Behind a proxy or load balancer the URL this service receives is not the one
Twilio called, so the source names its public endpoint in the required option
`public_url` (scheme, host, optional port and path, without query string).
The query string of the request as received is appended to it. Twilio has
signed URLs both with and without an explicit default port (`:443`, `:80`),
so both forms are tried, as Twilio's own request validators do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from pydantic import field_validator

from app.ingest.schemes.base import (
    Delivery,
    ExtractionDefaults,
    KeySpec,
    SchemeBase,
    SchemeOptions,
    VerificationError,
    VerifiedDelivery,
)
from app.ingest.schemes.digests import decode_base64, decode_hex, find_matching_key, matches
from app.ingest.schemes.headers import require_header
from app.ingest.schemes.keys import optional_key
from app.ingest.schemes.trace import Trace, quiet

HEADER = "x-twilio-signature"
IDEMPOTENCY_HEADER = "i-twilio-idempotency-token"
BODY_HASH_PARAMETER = "bodySHA256"

# Far more parameters than any Twilio callback sends.
MAX_FORM_FIELDS = 1000

DEFAULT_PORTS = {"https": 443, "http": 80}


class TwilioOptions(SchemeOptions):
    """Options of the `twilio` scheme."""

    # The endpoint's URL as configured in Twilio, for example https://hooks.example.com/v1/hooks/twilio.
    public_url: str

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        url_variants(value)
        return value


def url_variants(public_url: str) -> tuple[str, str]:
    """Return `public_url` without and with an explicit port; raise `ValueError` if it is unusable."""
    parts = urlsplit(public_url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("it must be an absolute http:// or https:// URL with a host")
    if parts.query or parts.fragment or "?" in public_url or "#" in public_url:
        raise ValueError("it must not contain a query string or fragment, because the request's own query string is appended")
    if parts.username is not None or parts.password is not None:
        raise ValueError("it must not contain user information")
    port = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    with_port = f"{host}:{port if port is not None else DEFAULT_PORTS[parts.scheme]}"
    without = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return without, urlunsplit((parts.scheme, with_port, parts.path, "", ""))


def request_query(url: str) -> str:
    """Return the raw query string of the request URL, without decoding it."""
    return url.partition("#")[0].partition("?")[2]


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """Parse a form-encoded body as strict UTF-8; raise `malformed_payload` otherwise."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        # UnicodeDecodeError is a ValueError, as is exceeding max_num_fields.
        raise VerificationError(
            "malformed_payload",
            "The request body is not form-encoded UTF-8 text with at most "
            f"{MAX_FORM_FIELDS} fields ({type(exc).__name__}); send the body that Twilio produced, unchanged.",
            status=400,
        ) from exc


class TwilioScheme(SchemeBase):
    """Twilio request signatures (HMAC-SHA1)."""

    name = "twilio"
    defaults = ExtractionDefaults(
        idempotency_key=KeySpec(headers=(IDEMPOTENCY_HEADER,), body_hash_fallback=True),
        # Messaging status callbacks, voice status callbacks, then incoming messages.
        event_type_pointer=("/MessageStatus", "/CallStatus", "/SmsStatus"),
        occurred_at_pointer=None,
    )
    options_model = TwilioOptions

    def __init__(self, secrets: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(secrets, options)
        self.urls = url_variants(self.options.public_url)

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the signature over the public URL and the form parameters or body hash."""
        trace = trace or quiet()
        value = require_header(delivery.headers, HEADER, hint="send the X-Twilio-Signature header that Twilio produced.")
        received = decode_base64(value)
        if received is None or len(received) != 20:
            raise VerificationError(
                "malformed_header",
                f"Header {HEADER} is not the base64 of a 20-byte HMAC-SHA1; "
                "send the header that Twilio produced, unchanged.",
                status=400,
                header=HEADER,
            )
        query = request_query(delivery.url)
        parameters = self._signed_parameters(delivery.body, query, trace)
        suffix = "".join(name + value for name, value in sorted(parameters))

        keys = self.utf8_keys()
        for url in self.urls:
            full_url = f"{url}?{query}" if query else url
            # surrogatepass: a URL that reached us with lone surrogates must fail to match, not raise.
            signed = (full_url + suffix).encode("utf-8", "surrogatepass")
            match = find_matching_key(keys, signed, received, "sha1")
            if match is not None:
                trace.note(f"{HEADER}: signature over {full_url} matches {match}")
                return VerifiedDelivery(
                    header_key=optional_key(delivery.headers, IDEMPOTENCY_HEADER),
                    details={"matched": match, "signed_url": full_url},
                )
            trace.note(f"{HEADER}: signature over {full_url} does not match any configured secret")
        raise VerificationError(
            "invalid_signature",
            f"Header {HEADER} does not match the request with a configured secret; check that the source's "
            f"secrets include the current Auth Token and that public_url {self.options.public_url} is the URL "
            "configured in Twilio.",
            header=HEADER,
        )

    def _signed_parameters(self, body: bytes, query: str, trace: Trace) -> list[tuple[str, str]]:
        body_hashes = parse_qs(query, keep_blank_values=True).get(BODY_HASH_PARAMETER)
        if not body_hashes:
            parameters = parse_form(body)
            trace.note(f"signed content: the URL followed by {len(parameters)} form parameters")
            return parameters
        received = decode_hex(body_hashes[0])
        if received is None or not matches(hashlib.sha256(body).digest(), received):
            trace.note(f"query parameter {BODY_HASH_PARAMETER} does not equal the SHA-256 of the body")
            raise VerificationError(
                "invalid_signature",
                f"The query parameter {BODY_HASH_PARAMETER} does not equal the SHA-256 of the request body; "
                "send the body that Twilio produced, unchanged.",
            )
        trace.note(f"query parameter {BODY_HASH_PARAMETER} equals the SHA-256 of the body; signed content: the URL")
        return []
