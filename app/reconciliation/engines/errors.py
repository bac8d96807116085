"""Errors raised by log query engines, and the translation of driver errors.

Exception tree::

    QueryEngineError            a log query did not produce a result
    ├── QueryTransientError     throttling, a retryable Athena failure, a network timeout:
    │                           running the same query later may succeed
    ├── QueryFailedError        invalid SQL, missing permissions, unreadable files:
    │                           running it again fails the same way
    ├── QueryTimeoutError       the engine's deadline passed; the query was stopped
    └── ScanLimitExceededError  the query scanned more bytes than the configured cap

botocore and duckdb exceptions are translated in `translate_errors`, the one place
where engine code calls the drivers. Anything else propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions
import duckdb
import structlog

log = structlog.get_logger(__name__)

# Error codes that AWS returns for rate limits and concurrency quotas. botocore's
# "standard" retry mode has already retried them when the error reaches us.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
# Server-side errors that AWS documents as safe to retry.
SERVER_ERROR_CODES = frozenset(
    {"InternalServerException", "InternalFailure", "ServiceUnavailable", "InternalError"}
)


class QueryEngineError(Exception):
    """A log query did not produce a result.

    `query_id` is the engine's id for the query when one was assigned (the Athena
    QueryExecutionId), so operators can look it up in the console.
    """

    def __init__(self, message: str, *, query_id: str | None = None) -> None:
        super().__init__(message)
        self.query_id = query_id


class QueryTransientError(QueryEngineError):
    """The query failed for a reason that may go away: retry the run later."""


class QueryFailedError(QueryEngineError):
    """The query failed and will fail again until the SQL, data or permissions change."""


class QueryTimeoutError(QueryEngineError):
    """The query did not finish before the engine's deadline and was stopped."""


class ScanLimitExceededError(QueryEngineError):
    """The query scanned more bytes than the configured per-query cap."""

    def __init__(
        self, message: str, *, bytes_scanned: int | None, limit: int | None, query_id: str | None
    ) -> None:
        super().__init__(message, query_id=query_id)
        self.bytes_scanned = bytes_scanned
        self.limit = limit


@contextmanager
def translate_errors(*, engine: str, query_id: str | None = None) -> Iterator[None]:
    """Translate botocore and duckdb exceptions raised inside the block.

    Each driver error becomes the most specific `QueryEngineError` subclass,
    chained with `from`. Errors that are not driver errors are re-raised unchanged.
    """
    try:
        yield
    except QueryEngineError:
        raise
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = f"{engine}: {exc.operation_name} failed with {code}: {error.get('Message', '')}"
        if code in THROTTLING_CODES or code in SERVER_ERROR_CODES:
            raise QueryTransientError(message, query_id=query_id) from exc
        raise QueryFailedError(message, query_id=query_id) from exc
    except (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
    ) as exc:
        # ConnectionError covers endpoint, connect and read timeouts.
        message = f"{engine}: the AWS API could not be reached: {exc}"
        raise QueryTransientError(message, query_id=query_id) from exc
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
        botocore.exceptions.NoRegionError,
        botocore.exceptions.ParamValidationError,
    ) as exc:
        message = f"{engine}: the AWS client is misconfigured: {exc}"
        raise QueryFailedError(message, query_id=query_id) from exc
    except duckdb.InterruptException as exc:
        message = f"{engine}: the query was interrupted at its deadline"
        raise QueryTimeoutError(message, query_id=query_id) from exc
    except duckdb.Error as exc:
        message = f"{engine}: the query failed: {exc}"
        raise QueryFailedError(message, query_id=query_id) from exc
