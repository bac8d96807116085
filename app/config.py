"""The TOML configuration file: sources now, log mappings and metrics beside them.

Secrets never appear in the file. Each source names the environment variables
that contain its secrets (`secrets_env`, several for rotation). A missing or
empty variable stops startup with a message that names it.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.ingest.pointer import parse_pointer
from app.ingest.schemes import SCHEMES, build_scheme
from app.ingest.schemes.base import ExtractionDefaults, KeySpec, Scheme, SchemeConfigError

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """The configuration file or an environment variable it names is invalid."""


class SourceSettings(BaseModel):
    """The keys of `[sources.NAME]` that the ingest route reads itself.

    Every other key is a scheme option and is validated by the scheme.
    """

    model_config = ConfigDict(extra="allow")

    scheme: str
    secrets_env: list[str] = Field(min_length=1)
    idempotency_key_header: str | None = None
    idempotency_key_pointer: str | None = None
    event_type_pointer: str | list[str] | None = None
    subject_pointer: str | None = None
    occurred_at_pointer: str | None = None
    max_body_bytes: int | None = Field(default=None, gt=0)
    decompress: bool = False
    max_decompressed_bytes: int = Field(default=1024 * 1024, gt=0)
    reconciliation: dict[str, Any] | None = None

    @field_validator("idempotency_key_pointer", "event_type_pointer", "subject_pointer", "occurred_at_pointer")
    @classmethod
    def _check_pointer(cls, value: str | list[str] | None) -> str | list[str] | None:
        for pointer in [value] if isinstance(value, str) else value or []:
            if pointer != "":
                parse_pointer(pointer)
        return value


@dataclass(frozen=True)
class Source:
    """A configured sender: its name, scheme (with secrets) and extraction rules."""

    name: str
    scheme: Scheme
    key_spec: KeySpec
    # One JSON pointer, or several tried in order.
    event_type_pointer: str | tuple[str, ...] | None
    event_type_header: str | None
    subject_pointer: str | None
    occurred_at_pointer: str | None
    max_body_bytes: int | None
    decompress: bool
    max_decompressed_bytes: int
    reconciliation: Mapping[str, Any] | None = None
    # Headers the source reads besides the scheme's own (key and event type), lower-case.
    header_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AppConfig:
    """The parsed configuration file; other packages parse their own sections from `raw`."""

    sources: Mapping[str, Source] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None


SOURCE_KEYS = frozenset(SourceSettings.model_fields)
# Every table the configuration file may contain; each package parses its own.
TOP_LEVEL_TABLES = frozenset({"sources", "log_mappings", "metrics", "metrics_api", "auth"})


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read and validate the TOML file at `path`; no path gives an empty configuration."""
    if path is None:
        return AppConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Configuration file {path} does not exist; set HOOKLEDGER_CONFIG to an existing file.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {path} is not valid TOML: {exc}.") from exc
    return parse_config(raw, environ if environ is not None else os.environ, path=path)


def parse_config(raw: Mapping[str, Any], environ: Mapping[str, str], *, path: Path | None = None) -> AppConfig:
    """Validate a parsed TOML document and resolve each source's secrets from `environ`."""
    unknown = sorted(set(raw) - TOP_LEVEL_TABLES)
    if unknown:
        raise ConfigError(
            f"Unknown top-level table {_with_suggestion(unknown[0], TOP_LEVEL_TABLES)} in the configuration; "
            f"the known tables are {', '.join(sorted(TOP_LEVEL_TABLES))}."
        )
    sources_raw = raw.get("sources", {})
    if not isinstance(sources_raw, dict):
        raise ConfigError("[sources] must be a table of [sources.NAME] tables.")
    sources = {name: parse_source(name, body, environ) for name, body in sources_raw.items()}
    return AppConfig(sources=sources, raw=raw, path=path)


def parse_source(name: str, body: Any, environ: Mapping[str, str]) -> Source:
    """Build one `Source` from its `[sources.NAME]` table."""
    if not SOURCE_NAME.match(name):
        raise ConfigError(
            f"Source name {name!r} is invalid: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit."
        )
    if not isinstance(body, dict):
        raise ConfigError(f"[sources.{name}] must be a table.")
    scheme_class = SCHEMES.get(body.get("scheme")) if isinstance(body.get("scheme"), str) else None
    if scheme_class is not None:
        option_names = set(scheme_class.options_model.model_fields)
        unknown = sorted(set(body) - SOURCE_KEYS - option_names)
        if unknown:
            raise ConfigError(
                f"[sources.{name}] {_with_suggestion(unknown[0], SOURCE_KEYS | option_names)} is not a source key "
                f"nor an option of scheme {body['scheme']!r}. Source keys: {', '.join(sorted(SOURCE_KEYS))}. "
                f"Scheme options: {', '.join(sorted(option_names)) or 'none'}."
            )
    try:
        settings = SourceSettings.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(f"[sources.{name}] {describe_validation_error(exc)}") from exc
    if settings.scheme not in SCHEMES:
        known = ", ".join(sorted(SCHEMES))
        raise ConfigError(f"[sources.{name}] scheme {settings.scheme!r} is unknown; known schemes: {known}.")

    secrets = [read_secret(name, variable, environ) for variable in settings.secrets_env]
    options = {key: value for key, value in body.items() if key not in SOURCE_KEYS}
    try:
        scheme = build_scheme(settings.scheme, secrets, options)
    except SchemeConfigError as exc:
        raise ConfigError(f"[sources.{name}] {exc}") from exc

    defaults: ExtractionDefaults = scheme.defaults
    key_spec = defaults.idempotency_key
    if settings.idempotency_key_header or settings.idempotency_key_pointer:
        key_spec = KeySpec(
            headers=(settings.idempotency_key_header.lower(),) if settings.idempotency_key_header else (),
            pointers=(settings.idempotency_key_pointer,) if settings.idempotency_key_pointer else (),
            body_hash_fallback=False,
        )
    return Source(
        name=name,
        scheme=scheme,
        key_spec=key_spec,
        event_type_pointer=_override(_pointers(settings.event_type_pointer), defaults.event_type_pointer),
        event_type_header=defaults.event_type_header if settings.event_type_pointer is None else None,
        subject_pointer=_override(settings.subject_pointer, defaults.subject_pointer),
        occurred_at_pointer=_override(settings.occurred_at_pointer, defaults.occurred_at_pointer),
        max_body_bytes=settings.max_body_bytes,
        decompress=settings.decompress,
        max_decompressed_bytes=settings.max_decompressed_bytes,
        reconciliation=settings.reconciliation,
        header_names=frozenset(
            [*key_spec.headers, *([defaults.event_type_header] if defaults.event_type_header else [])]
            + _scheme_headers(options)
        ),
    )


def _scheme_headers(options: Mapping[str, Any]) -> list[str]:
    """Return the header names a generic scheme's options point at (signature, timestamp)."""
    return [
        str(options[key]).lower()
        for key in ("signature_header", "timestamp_header")
        if isinstance(options.get(key), str)
    ]


def _override(configured: Any, default: Any) -> Any:
    """Return the configured pointer; an empty string in the file switches the default off."""
    if configured is None:
        return default
    return configured or None


def _pointers(configured: str | list[str] | None) -> str | tuple[str, ...] | None:
    if isinstance(configured, list):
        return tuple(configured)
    return configured


def _with_suggestion(unknown: str, known: set[str] | frozenset[str]) -> str:
    """Quote an unknown key, adding the closest known one when it looks like a typo."""
    close = difflib.get_close_matches(unknown, sorted(known), n=1)
    return f"{unknown!r} (did you mean {close[0]!r}?)" if close else repr(unknown)


def describe_validation_error(exc: ValidationError) -> str:
    """Describe one validation error of a config table, unknown keys first because they often explain the others."""
    errors = exc.errors()
    first = next((error for error in errors if error["type"] == "extra_forbidden"), errors[0])
    location = ".".join(str(part) for part in first["loc"]) or "table"
    message = first["msg"].removeprefix("Value error, ").rstrip(".")
    if first["type"] == "extra_forbidden":
        message = "unknown key; remove it or check its spelling"
    return f"{location}: {message}."


def read_secret(source: str, variable: str, environ: Mapping[str, str]) -> str:
    """Return the stripped value of `variable`; a missing or empty one fails closed."""
    value = environ.get(variable)
    if value is None:
        raise ConfigError(f"[sources.{source}] secret variable {variable} is not set; export it before starting hookledger.")
    value = value.strip()
    if not value:
        raise ConfigError(f"[sources.{source}] secret variable {variable} is empty; set it to the sender's signing secret.")
    return value
