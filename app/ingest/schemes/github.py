"""GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.

GitHub signs no timestamp, so a captured delivery can be replayed at any
time; the ledger's permanent idempotency key is what makes a replay harmless.
The legacy `X-Hub-Signature: sha1=<hex>` header is accepted only with the
option `allow_sha1 = true`, and only when the SHA-256 header is absent.
"""

from __future__ import annotations

from datetime import datetime

from app.ingest.schemes.base import (
    Delivery,
    ExtractionDefaults,
    KeySpec,
    SchemeBase,
    SchemeOptions,
    VerificationError,
    VerifiedDelivery,
)
from app.ingest.schemes.digests import DIGEST_SIZES, Algorithm, decode_hex, find_matching_key
from app.ingest.schemes.headers import require_header, show
from app.ingest.schemes.keys import optional_key
from app.ingest.schemes.trace import Trace, quiet

SHA256_HEADER = "x-hub-signature-256"
SHA1_HEADER = "x-hub-signature"
DELIVERY_HEADER = "x-github-delivery"


class GitHubOptions(SchemeOptions):
    """Options of the `github` scheme."""

    # Accept the SHA-1 `X-Hub-Signature` header when `X-Hub-Signature-256` is absent.
    allow_sha1: bool = False


class GitHubScheme(SchemeBase):
    """GitHub webhook signatures."""

    name = "github"
    defaults = ExtractionDefaults(
        idempotency_key=KeySpec(headers=(DELIVERY_HEADER,), body_hash_fallback=True),
        event_type_header="x-github-event",
        event_type_pointer="/action",
        subject_pointer="/sender/login",
        occurred_at_pointer=None,
    )
    options_model = GitHubOptions

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify the body's HMAC; return the delivery GUID as key when present."""
        trace = trace or quiet()

        header, algorithm = self._pick_header(delivery)
        value = require_header(
            delivery.headers, header, hint="configure a secret on the GitHub webhook so that GitHub signs each delivery."
        )
        prefix = f"{algorithm}="
        if not value.startswith(prefix):
            raise VerificationError(
                "malformed_header",
                f"Header {header} value {show(value)} does not start with '{prefix}'; "
                "send the header that GitHub produced, unchanged.",
                status=400,
                header=header,
            )

        received = decode_hex(value.removeprefix(prefix))
        if received is None or len(received) != DIGEST_SIZES[algorithm]:
            raise VerificationError(
                "malformed_header",
                f"Header {header} does not carry a {DIGEST_SIZES[algorithm] * 2}-digit hex {algorithm.upper()} "
                "digest after the prefix; send the header that GitHub produced, unchanged.",
                status=400,
                header=header,
            )

        match = find_matching_key(self.utf8_keys(), delivery.body, received, algorithm)
        if match is None:
            trace.note(f"{header}: signature does not match any configured secret")
            raise VerificationError(
                "invalid_signature",
                f"Header {header} does not match the body with a configured secret; check that the "
                "source's secrets equal the webhook's secret in GitHub and that the body reaches the "
                "server byte for byte as sent.",
                header=header,
            )
        trace.note(f"{header}: signature matches {match}")
        return VerifiedDelivery(
            header_key=optional_key(delivery.headers, DELIVERY_HEADER),
            details={"matched": f"{algorithm} {match}"},
        )

    def _pick_header(self, delivery: Delivery) -> tuple[str, Algorithm]:
        if SHA256_HEADER in delivery.headers or SHA1_HEADER not in delivery.headers:
            return SHA256_HEADER, "sha256"
        if self.options.allow_sha1:
            return SHA1_HEADER, "sha1"
        raise VerificationError(
            "missing_header",
            f"Header {SHA256_HEADER} is missing and only the legacy SHA-1 header {SHA1_HEADER} is present; "
            "set allow_sha1 = true for this source to accept it, or have the sender sign with SHA-256.",
            status=400,
            header=SHA256_HEADER,
        )
