"""Metrics: definitions from `[metrics.*]`, series over the ledger, and direct metric events.

As an application extension this package parses its configuration sections in
`configure` and contributes the `/v1/metrics` and `/v1/metric-events` routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import AppConfig
from app.metrics.definitions import MetricsConfig, parse_metrics_config
from app.metrics.routes import router
from app.metrics.settings import MetricsSettings
from app.settings import Settings


@dataclass(frozen=True)
class MetricsExtension:
    """The parsed definitions and the metrics API settings, stored in `state.extensions["app.metrics"]`."""

    config: MetricsConfig
    settings: MetricsSettings


def configure(config: AppConfig, settings: Settings) -> MetricsExtension:
    """Parse `[metrics.*]` and `[metrics_api]`; raise ConfigError naming the metric and the field."""
    return MetricsExtension(config=parse_metrics_config(config), settings=MetricsSettings())


__all__ = ["configure", "router"]
