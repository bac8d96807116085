"""Environment settings of the metrics API (`HOOKLEDGER_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKLEDGER_", extra="ignore")

    max_metric_events_batch: int = Field(
        default=500, ge=1, le=10_000, description="Maximum number of events in one POST /v1/metric-events."
    )
    max_metric_events_body_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Maximum body size of POST /v1/metric-events, in bytes."
    )
    max_metric_buckets: int = Field(
        default=1000, ge=1, le=100_000, description="Maximum number of buckets one series query may return."
    )
