"""The FastAPI application factory."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.config import AppConfig, load_config
from app.db.engine import Database, create_engine
from app.db.migrate import schema_state
from app.errors import UnhandledErrorMiddleware, install_error_handlers
from app.health import router as health_router
from app.ingest.routes import router as ingest_router
from app.logs import RequestIdMiddleware
from app.observability import IngestMetrics
from app.settings import Settings
from app.state import AppState, Clock, utc_now

log = structlog.get_logger("app")

# Feature packages plugged into the application. Each module may define:
#   router: APIRouter                                   included in the app
#   configure(config: AppConfig, settings: Settings)    parses its config sections; raises ConfigError
#   async startup(state: AppState) / shutdown(state)    builds and releases its resources
# The value returned by configure() is stored in state.extensions[<module name>].
EXTENSIONS: list[str] = ["app.auth", "app.metrics", "app.reconciliation.extension"]


def load_extensions() -> list[ModuleType]:
    return [importlib.import_module(name) for name in EXTENSIONS]


def configure_extensions(config: AppConfig, settings: Settings) -> dict[str, Any]:
    """Let each extension validate its configuration sections; raises ConfigError."""
    configured: dict[str, Any] = {}
    for module in load_extensions():
        configure = getattr(module, "configure", None)
        configured[module.__name__] = configure(config, settings) if configure else None
    return configured


class SchemaOutdatedError(RuntimeError):
    """The database schema is behind the code; `hookledger migrate` fixes it."""


def create_app(
    settings: Settings | None = None,
    config: AppConfig | None = None,
    *,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the application; the database engine is created when the lifespan starts."""
    settings = settings or Settings()
    config = config if config is not None else load_config(settings.config)
    extensions = load_extensions()
    configured = configure_extensions(config, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        database = Database(engine)
        try:
            schema = await schema_state(engine)
            if not schema.is_current:
                raise SchemaOutdatedError(
                    f"The database schema is at revision {schema.current or 'none'} and this version needs "
                    f"{schema.head}; run 'hookledger migrate' first."
                )
            registry = CollectorRegistry()
            state = AppState(
                settings=settings,
                config=config,
                database=database,
                registry=registry,
                ingest_metrics=IngestMetrics(registry),
                clock=clock,
            )
            state.extensions.update(configured)
            app.state.hookledger = state
            started = []
            try:
                for module in extensions:
                    startup = getattr(module, "startup", None)
                    if startup:
                        await startup(state)
                    started.append(module)
                log.info("app.started", sources=sorted(config.sources), database=engine.url.get_backend_name())
                yield
            finally:
                for module in reversed(started):
                    shutdown = getattr(module, "shutdown", None)
                    if shutdown:
                        await shutdown(state)
        finally:
            await database.dispose()
            log.info("app.stopped")

    app = FastAPI(
        title="hookledger",
        summary="Counts what happens in other systems exactly once.",
        version="0.1.0",
        lifespan=lifespan,
        # Webhook senders do not follow redirects, so /v1/hooks/x/ gets a 404 problem, not a 307.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(ingest_router)
    for module in extensions:
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
    return app


def create_app_from_env() -> FastAPI:
    """Build the application from the environment with logging configured; uvicorn's factory entry point."""
    from app.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
