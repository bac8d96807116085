"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.config import AppConfig, load_config
from app.db.engine import Database, create_engine
from app.db.migrate import schema_state
from app.errors import install_error_handlers
from app.health import router as health_router
from app.ingest.routes import router as ingest_router
from app.logs import RequestIdMiddleware
from app.observability import IngestMetrics
from app.settings import Settings
from app.state import AppState, Clock, utc_now

log = structlog.get_logger("app")


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
            app.state.hookledger = state
            log.info("app.started", sources=sorted(config.sources), database=engine.url.get_backend_name())
            yield
        finally:
            await database.dispose()
            log.info("app.stopped")

    app = FastAPI(
        title="hookledger",
        summary="Counts what happens in other systems exactly once.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(ingest_router)
    return app


def create_app_from_env() -> FastAPI:
    """Build the application from the environment with logging configured; uvicorn's factory entry point."""
    from app.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
