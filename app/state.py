"""The resources the application lifespan builds and every request reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from app.config import AppConfig
from app.db.engine import Database
from app.observability import IngestMetrics
from app.settings import Settings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    """Resources owned by one application instance, built in its lifespan."""

    settings: Settings
    config: AppConfig
    database: Database
    registry: CollectorRegistry
    ingest_metrics: IngestMetrics
    clock: Clock = utc_now
    # Resources of other packages (metric definitions, auth verifier, reconciler), by name.
    extensions: dict[str, Any] = field(default_factory=dict)
