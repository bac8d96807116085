"""The verifier interface that every signature scheme implements.

A scheme turns one delivery (lower-cased headers, the raw body bytes, the URL)
into a `VerifiedDelivery`, or raises `VerificationError` with a stable `code`.
Verification runs on the raw bytes before anything parses the body.

Exception tree::

    VerificationError           a delivery failed verification (HTTP 4xx)
    SchemeConfigError           a source's scheme options or secrets are invalid (startup)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.ingest.schemes.trace import Trace

# Default tolerance for schemes that sign a timestamp (Standard Webhooks, Stripe, Slack).
DEFAULT_TOLERANCE_SECONDS = 300
# Senders sign each attempt with a fresh timestamp, so a week is far beyond any real skew.
MAX_TOLERANCE_SECONDS = 7 * 24 * 3600


class VerificationError(Exception):
    """A delivery failed verification.

    `code` is the stable problem code (`missing_header`, `invalid_signature`,
    `timestamp_out_of_tolerance`, `malformed_header`, ...), `status` the HTTP
    status, and `detail` a full sentence that states what failed, on which value,
    and what to do.
    """

    def __init__(self, code: str, detail: str, *, status: int = 401, header: str | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.header = header


class SchemeConfigError(ValueError):
    """A source's scheme options or secrets are invalid; raised at startup."""


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as received: header names lower-cased, the body unparsed."""

    headers: Mapping[str, str]
    body: bytes
    url: str = ""
    content_type: str = ""


@dataclass(frozen=True)
class KeySpec:
    """The places a delivery's idempotency key is read from, tried in order.

    `headers` are header names (lower-case); `pointers` are JSON pointers into
    the parsed body. With `body_hash_fallback`, a delivery with none of them is
    keyed by the SHA-256 of its raw body.
    """

    headers: tuple[str, ...] = ()
    pointers: tuple[str, ...] = ()
    body_hash_fallback: bool = False


@dataclass(frozen=True)
class ExtractionDefaults:
    """A scheme's default idempotency key and event field locations."""

    idempotency_key: KeySpec
    # With `event_type_header` set, this body field is appended to the header's
    # value with a dot when it is a non-empty string: GitHub's
    # `X-GitHub-Event: pull_request` plus `/action` "opened" gives
    # `pull_request.opened`. None reads no body field.
    # One JSON pointer, or several tried in order (the first present wins).
    event_type_pointer: str | tuple[str, ...] | None = "/type"
    subject_pointer: str | None = None
    occurred_at_pointer: str | None = "/timestamp"
    # A static event type for senders whose event type is in a header (GitHub's
    # X-GitHub-Event) instead of the body.
    event_type_header: str | None = None


@dataclass(frozen=True)
class VerifiedDelivery:
    """The facts that verification established about a delivery.

    `signed_at` is the signed delivery timestamp, where the scheme signs one.
    `header_key` is the idempotency key the scheme read from a header, if any.
    """

    signed_at: datetime | None = None
    header_key: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


BodyFormat = Literal["json", "form"]


class Scheme(Protocol):
    """One signature scheme, configured for one source."""

    name: ClassVar[str]
    defaults: ClassVar[ExtractionDefaults]

    def verify(self, delivery: Delivery, now: datetime) -> VerifiedDelivery:
        """Verify `delivery` against the source's secrets; raise `VerificationError`."""
        ...


def body_sha256(body: bytes) -> str:
    """Return the hex SHA-256 of a raw body, the ledger's `body_sha256` column."""
    return hashlib.sha256(body).hexdigest()


def split_secrets(values: Sequence[str]) -> list[str]:
    """Strip surrounding white space from secrets read from the environment."""
    return [value.strip() for value in values]


def check_secrets(scheme: str, secrets: Sequence[str]) -> tuple[str, ...]:
    """Strip `secrets` and raise `SchemeConfigError` when there are none or one is empty."""
    stripped = split_secrets(secrets)
    if not stripped:
        raise SchemeConfigError(
            f"scheme {scheme!r} needs at least one secret; name the variables that hold them in secrets_env."
        )
    for position, secret in enumerate(stripped, start=1):
        if not secret:
            raise SchemeConfigError(
                f"secret {position} for scheme {scheme!r} is empty; set it to the sender's signing secret."
            )
    return tuple(stripped)


class SchemeOptions(BaseModel):
    """Options a scheme reads from its source's table; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TimestampOptions(SchemeOptions):
    """Options of a scheme that signs a timestamp."""

    tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1, le=MAX_TOLERANCE_SECONDS)


def parse_options(scheme: str, model: type[SchemeOptions], options: Mapping[str, Any]) -> Any:
    """Validate `options` with `model`; raise `SchemeConfigError` naming the first bad option."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        error = exc.errors()[0]
        option = ".".join(str(part) for part in error["loc"])
        known = ", ".join(sorted(model.model_fields)) or "none"
        if not option:
            reason = error["msg"].removeprefix("Value error, ")
            message = f"options for scheme {scheme!r} are invalid: {reason}"
        elif error["type"] == "extra_forbidden":
            message = f"option {option!r} is unknown for scheme {scheme!r}; known options: {known}."
        elif error["type"] == "missing":
            message = f"option {option!r} is required for scheme {scheme!r}."
        else:
            message = f"option {option!r} for scheme {scheme!r} is invalid: {error['msg']}."
        raise SchemeConfigError(message) from exc


class SchemeBase:
    """Shared constructor of the built-in schemes: validated secrets and options.

    Subclasses set `name`, `defaults` and `options_model`, and implement `verify`.
    `verify` takes an optional `Trace` that `hookledger verify` prints.
    """

    name: ClassVar[str]
    defaults: ClassVar[ExtractionDefaults]
    options_model: ClassVar[type[SchemeOptions]] = SchemeOptions

    def __init__(self, secrets: Sequence[str], options: Mapping[str, Any]) -> None:
        self.secrets = check_secrets(self.name, secrets)
        self.options = parse_options(self.name, self.options_model, options)

    def utf8_keys(self) -> list[tuple[str, bytes]]:
        """Return each secret's UTF-8 bytes with a label ("secret 2") for traces and details."""
        return [(f"secret {position}", secret.encode()) for position, secret in enumerate(self.secrets, start=1)]

    def verify(self, delivery: Delivery, now: datetime, trace: Trace | None = None) -> VerifiedDelivery:
        """Verify `delivery` against the source's secrets; raise `VerificationError`."""
        raise NotImplementedError
