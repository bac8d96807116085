"""Plug reconciliation into the application: configuration, routes, reconciler and its metrics."""

from __future__ import annotations

from app.config import AppConfig
from app.reconciliation.config import ReconciliationConfig, parse_reconciliation_config
from app.reconciliation.observability import ReconciliationMetrics
from app.reconciliation.routes import router
from app.reconciliation.runtime import RUNTIME_KEY, ReconciliationRuntime
from app.reconciliation.service import Reconciler
from app.settings import Settings
from app.state import AppState

__all__ = ["configure", "router", "shutdown", "startup"]


def configure(config: AppConfig, settings: Settings) -> ReconciliationConfig:
    """Validate every `[sources.NAME.reconciliation]` table; raise ConfigError naming the source and key."""
    return parse_reconciliation_config(config)


async def startup(state: AppState) -> None:
    config: ReconciliationConfig = state.extensions[__name__]
    reconciler = Reconciler(
        state.database,
        config,
        known_sources=frozenset(state.config.sources),
        clock=state.clock,
        metrics=ReconciliationMetrics(state.registry),
    )
    state.extensions[RUNTIME_KEY] = ReconciliationRuntime(reconciler)


async def shutdown(state: AppState) -> None:
    runtime: ReconciliationRuntime | None = state.extensions.get(RUNTIME_KEY)
    if runtime is not None:
        await runtime.shutdown()
