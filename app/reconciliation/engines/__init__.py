"""Log query engines: one seam, with DuckDB (embedded) and Athena implementations.

Build an engine with `app.reconciliation.engines.factory.build_engine`. It is not
re-exported here because the engine modules import `app.reconciliation.mappings`,
which imports this package.
"""

from app.reconciliation.engines.base import (
    LogQuery,
    LogRecord,
    LogResult,
    QueryEngine,
    QueryStats,
)
from app.reconciliation.engines.errors import (
    QueryEngineError,
    QueryFailedError,
    QueryTimeoutError,
    QueryTransientError,
    ScanLimitExceededError,
)

__all__ = [
    "LogQuery",
    "LogRecord",
    "LogResult",
    "QueryEngine",
    "QueryEngineError",
    "QueryFailedError",
    "QueryStats",
    "QueryTimeoutError",
    "QueryTransientError",
    "ScanLimitExceededError",
]

