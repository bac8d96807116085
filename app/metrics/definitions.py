"""Metric definitions from the `[metrics.NAME]` tables of the configuration file.

A metric counts ledger events of one source whose event type is in a list,
optionally narrowed by payload filters (JSON pointer equals a value, or is one
of several values). `[metrics_api] sources = [...]` names extra sources that
only receive events through `POST /v1/metric-events`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from app.config import AppConfig, ConfigError, SOURCE_NAME, describe_validation_error
from app.ingest.pointer import parse_pointer

METRIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# Filter values compare by JSON type and value, so only these scalar types are allowed.
FilterValue = StrictStr | StrictInt | StrictBool


class _FilterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    pointer: str
    equals: FilterValue | None = None
    in_: list[FilterValue] | None = Field(default=None, alias="in", min_length=1)


class _MetricSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    source: str
    event_types: list[StrictStr] = Field(min_length=1)
    filters: list[_FilterSettings] = Field(default_factory=list)
    by_subject: bool = False


class _MetricsApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[StrictStr] = Field(default_factory=list)


@dataclass(frozen=True)
class PayloadFilter:
    """One condition on the payload: the value at `tokens` is one of `values`."""

    pointer: str
    tokens: tuple[str, ...]
    values: tuple[str | int | bool, ...]

    def describe(self) -> dict[str, Any]:
        if len(self.values) == 1:
            return {"pointer": self.pointer, "equals": self.values[0]}
        return {"pointer": self.pointer, "in": list(self.values)}


@dataclass(frozen=True)
class MetricDefinition:
    """A named count over the ledger."""

    name: str
    description: str
    source: str
    event_types: tuple[str, ...]
    filters: tuple[PayloadFilter, ...]
    by_subject: bool

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "event_types": list(self.event_types),
            "filters": [payload_filter.describe() for payload_filter in self.filters],
            "by_subject": self.by_subject,
        }


@dataclass(frozen=True)
class MetricsConfig:
    """The parsed `[metrics.*]` and `[metrics_api]` sections."""

    definitions: Mapping[str, MetricDefinition]
    api_sources: frozenset[str]


def parse_metrics_config(config: AppConfig) -> MetricsConfig:
    """Validate the metric definitions and API sources; raise ConfigError naming the metric and field."""
    api_sources = _parse_api_sources(config.raw.get("metrics_api", {}))
    known_sources = set(config.sources) | api_sources
    metrics_raw = config.raw.get("metrics", {})
    if not isinstance(metrics_raw, dict):
        raise ConfigError("[metrics] must be a table of [metrics.NAME] tables.")
    definitions = {
        name: parse_definition(name, body, known_sources) for name, body in sorted(metrics_raw.items())
    }
    return MetricsConfig(definitions=definitions, api_sources=frozenset(api_sources))


def _parse_api_sources(raw: Any) -> set[str]:
    if not isinstance(raw, dict):
        raise ConfigError("[metrics_api] must be a table, for example: [metrics_api] sources = [\"billing\"].")
    try:
        settings = _MetricsApiSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"[metrics_api] {describe_validation_error(exc)}") from exc
    for name in settings.sources:
        if not SOURCE_NAME.match(name):
            raise ConfigError(
                f"[metrics_api] sources: {name!r} is not a valid source name; use 1-64 lower-case letters, "
                "digits, '-' or '_', starting with a letter or digit."
            )
    return set(settings.sources)


def parse_definition(name: str, body: Any, known_sources: set[str]) -> MetricDefinition:
    """Build one `MetricDefinition` from its `[metrics.NAME]` table."""
    if not METRIC_NAME.match(name):
        raise ConfigError(
            f"Metric name {name!r} is invalid: use 1-64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    if not isinstance(body, dict):
        raise ConfigError(f"[metrics.{name}] must be a table.")
    try:
        settings = _MetricSettings.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(f"[metrics.{name}] {describe_validation_error(exc)}") from exc

    if settings.source not in known_sources:
        known = ", ".join(sorted(known_sources)) or "none configured"
        raise ConfigError(
            f"[metrics.{name}] source {settings.source!r} is unknown; configure [sources.{settings.source}] "
            f"or list it in [metrics_api] sources (known sources: {known})."
        )
    for index, event_type in enumerate(settings.event_types):
        if not event_type or len(event_type) > 255:
            raise ConfigError(f"[metrics.{name}] event_types.{index}: an event type must be 1-255 characters.")
    filters = tuple(_parse_filter(name, index, item) for index, item in enumerate(settings.filters))
    return MetricDefinition(
        name=name,
        description=settings.description,
        source=settings.source,
        event_types=tuple(dict.fromkeys(settings.event_types)),
        filters=filters,
        by_subject=settings.by_subject,
    )


def _parse_filter(metric: str, index: int, settings: _FilterSettings) -> PayloadFilter:
    where = f"[metrics.{metric}] filters.{index}"
    try:
        tokens = parse_pointer(settings.pointer)
    except ValueError as exc:
        raise ConfigError(f"{where} pointer: {exc}") from exc
    if not tokens:
        raise ConfigError(f"{where} pointer: the empty pointer selects the whole payload; point at a field like /data/status.")
    if (settings.equals is None) == (settings.in_ is None):
        raise ConfigError(f"{where}: set exactly one of 'equals' or 'in'.")
    values = (settings.equals,) if settings.equals is not None else tuple(settings.in_ or ())
    return PayloadFilter(pointer=settings.pointer, tokens=tokens, values=values)
