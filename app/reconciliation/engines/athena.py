"""The distributed log query engine: Amazon Athena through boto3.

One `query_logs` call submits the mapping's SQL with the query's deterministic
ClientRequestToken, so a restarted job gets the same QueryExecutionId back
instead of launching a second query. It polls `get_query_execution` with
jittered exponential backoff until the query ends or the deadline passes. QUEUED
may follow RUNNING and means "keep waiting". At the deadline it stops the query and
raises `QueryTimeoutError`. A FAILED query whose `AthenaError.Retryable` is true is
submitted again under a new token, at most `max_retries` times.

Results are read with `get_query_results`, 1000 rows per page. Every value is a
string, NULL is a datum without `VarCharValue`, and only the first page starts
with the header row. After `use_result_file_above_rows` rows the rest is read from
the CSV result file in S3, which is cheaper than thousands of API pages.

Result reuse is off, because a window that is still receiving late log files must
not be served from a cached run.
"""

from __future__ import annotations

import csv
import io
import random as random_module
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
import structlog
from botocore.config import Config
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.reconciliation.engines.base import LogQuery, LogRecord, QueryStats, record_from_row
from app.reconciliation.engines.errors import (
    QueryFailedError,
    QueryTimeoutError,
    QueryTransientError,
    ScanLimitExceededError,
    translate_errors,
)

log = structlog.get_logger(__name__)

PAGE_SIZE = 1000
MIN_TOKEN_LENGTH = 32
MAX_TOKEN_LENGTH = 128
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
# Athena cancels a query that crosses the workgroup's BytesScannedCutoffPerQuery.
# NOTE: the StateChangeReason text is matched on this phrase; it was not checked
# against a real cancelled query.
_SCAN_LIMIT_REASON = "bytes scanned limit"


class AthenaSettings(BaseSettings):
    """Athena settings, from `HOOKLEDGER_ATHENA_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HOOKLEDGER_ATHENA_")

    workgroup: str = "primary"
    # The database used for unqualified names; mapping tables are always qualified.
    database: str = "hookledger"
    # s3://bucket/prefix/ for result files; None when the workgroup enforces its own.
    output_location: str | None = None
    region: str | None = None
    # Raise ScanLimitExceededError above this many bytes scanned per query; None: no cap.
    # Also set the workgroup's BytesScannedCutoffPerQuery so Athena stops the query itself.
    max_bytes_scanned: int | None = 10 * 1024**3
    # Total seconds for one query_logs call, retries included, before the query is stopped.
    deadline_seconds: float = 900.0
    poll_initial_seconds: float = 0.5
    poll_max_seconds: float = 10.0
    # Read rows after this many from the S3 result file instead of the API; None: never.
    use_result_file_above_rows: int | None = 10_000
    # Resubmissions of a query that FAILED with AthenaError.Retryable set.
    max_retries: int = 2
    # botocore's attempts per API call in "standard" retry mode (throttling, 5xx).
    api_max_attempts: int = 8


def make_athena_client(settings: AthenaSettings) -> Any:
    """Build an Athena client with botocore's "standard" retry mode.

    The default "legacy" mode does not retry Athena's TooManyRequestsException.
    """
    config = Config(retries={"mode": "standard", "max_attempts": settings.api_max_attempts})
    return boto3.client("athena", region_name=settings.region, config=config)


def make_s3_client(settings: AthenaSettings) -> Any:
    """Build the S3 client that reads result files."""
    config = Config(retries={"mode": "standard", "max_attempts": settings.api_max_attempts})
    return boto3.client("s3", region_name=settings.region, config=config)


def athena_parameters(query: LogQuery) -> list[str]:
    """Return the ExecutionParameters: each value quoted as an Athena string literal."""
    return ["'" + value.replace("'", "''") + "'" for value in query.parameters()]


def token_for_attempt(request_token: str, attempt: int) -> str:
    """Return the ClientRequestToken of a (re)submission; attempt 0 uses the token as given."""
    if not MIN_TOKEN_LENGTH <= len(request_token) <= MAX_TOKEN_LENGTH:
        msg = (
            f"The request token must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters "
            f"long for Athena, got {len(request_token)} characters."
        )
        raise ValueError(msg)
    if attempt == 0:
        return request_token
    suffix = f"-retry{attempt}"
    return request_token[: MAX_TOKEN_LENGTH - len(suffix)] + suffix


class AthenaEngine:
    """Query engine over the Athena table; see the module docstring.

    `sleep`, `clock` (monotonic seconds) and `random` (a float in [0, 1)) are
    injectable so tests can drive polling without waiting.
    """

    name = "athena"

    def __init__(
        self,
        client: Any,
        settings: AthenaSettings,
        *,
        s3_client: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.client = client
        self.settings = settings
        self.s3_client = s3_client
        self._sleep = sleep
        self._clock = clock
        self._random = random

    def query_logs(self, query: LogQuery) -> AthenaLogResult:
        """Run the query to completion and return a result that streams its rows."""
        started = self._clock()
        deadline = started + self.settings.deadline_seconds
        sql = query.mapping.render_sql(query.mapping.athena_table_reference())
        parameters = athena_parameters(query)

        attempt = 0
        while True:
            token = token_for_attempt(query.request_token, attempt)
            query_id = self._start(sql, parameters, token)
            log.info(
                "reconciliation.engine.query_started",
                engine=self.name,
                mapping=query.mapping.name,
                query_id=query_id,
                attempt=attempt,
                dt_from=parameters[0],
                dt_to=parameters[1],
            )
            execution = self._wait(query_id, deadline)
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state == "CANCELLED":
                self._raise_cancelled(execution, query_id)
            error = execution["Status"].get("AthenaError", {})
            reason = error.get("ErrorMessage") or execution["Status"].get("StateChangeReason", "")
            if not error.get("Retryable", False):
                msg = f"Athena query {query_id} failed: {reason}"
                raise QueryFailedError(msg, query_id=query_id)
            if attempt >= self.settings.max_retries:
                msg = (
                    f"Athena query {query_id} failed with a retryable error after "
                    f"{attempt + 1} attempts: {reason}"
                )
                raise QueryTransientError(msg, query_id=query_id)
            attempt += 1
            log.warning(
                "reconciliation.engine.query_retried",
                engine=self.name,
                query_id=query_id,
                attempt=attempt,
                reason=reason,
            )

        stats = QueryStats(engine=self.name, query_id=query_id)
        stats.bytes_scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
        self._check_scan_limit(stats)
        output_location = execution.get("ResultConfiguration", {}).get("OutputLocation")
        return AthenaLogResult(self, stats, output_location, started)

    def _start(self, sql: str, parameters: list[str], token: str) -> str:
        request: dict[str, Any] = {
            "QueryString": sql,
            "ClientRequestToken": token,
            "QueryExecutionContext": {"Database": self.settings.database},
            "WorkGroup": self.settings.workgroup,
            "ExecutionParameters": parameters,
            "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": False}},
        }
        if self.settings.output_location:
            request["ResultConfiguration"] = {"OutputLocation": self.settings.output_location}
        with translate_errors(engine=self.name):
            response = self.client.start_query_execution(**request)
        return response["QueryExecutionId"]

    def _wait(self, query_id: str, deadline: float) -> dict[str, Any]:
        delay = self.settings.poll_initial_seconds
        while True:
            with translate_errors(engine=self.name, query_id=query_id):
                response = self.client.get_query_execution(QueryExecutionId=query_id)
            execution = response["QueryExecution"]
            if execution["Status"]["State"] in TERMINAL_STATES:
                return execution
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._stop(query_id)
                msg = (
                    f"Athena query {query_id} did not finish within "
                    f"{self.settings.deadline_seconds} seconds and was stopped."
                )
                raise QueryTimeoutError(msg, query_id=query_id)
            # Equal jitter: wait between half and all of the current delay.
            jittered = delay * (0.5 + self._random() / 2)
            self._sleep(min(jittered, remaining))
            delay = min(delay * 2, self.settings.poll_max_seconds)

    def _stop(self, query_id: str) -> None:
        try:
            with translate_errors(engine=self.name, query_id=query_id):
                self.client.stop_query_execution(QueryExecutionId=query_id)
        except (QueryTransientError, QueryFailedError) as exc:
            # The timeout is still reported; the query may keep running until Athena's own limit.
            log.error(
                "reconciliation.engine.stop_failed", engine=self.name, query_id=query_id, error=str(exc)
            )
        else:
            log.warning("reconciliation.engine.query_stopped", engine=self.name, query_id=query_id)

    def _raise_cancelled(self, execution: dict[str, Any], query_id: str) -> None:
        reason = execution["Status"].get("StateChangeReason", "")
        if _SCAN_LIMIT_REASON in reason.lower():
            bytes_scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
            msg = f"Athena query {query_id} was cancelled by the workgroup's scan limit: {reason}"
            raise ScanLimitExceededError(
                msg, bytes_scanned=bytes_scanned, limit=None, query_id=query_id
            )
        msg = f"Athena query {query_id} was cancelled: {reason or 'no reason given'}"
        raise QueryFailedError(msg, query_id=query_id)

    def _check_scan_limit(self, stats: QueryStats) -> None:
        limit = self.settings.max_bytes_scanned
        if limit is None or stats.bytes_scanned is None or stats.bytes_scanned <= limit:
            return
        msg = (
            f"Athena query {stats.query_id} scanned {stats.bytes_scanned} bytes, more than "
            f"the cap of {limit} bytes; narrow the window or raise "
            "HOOKLEDGER_ATHENA_MAX_BYTES_SCANNED."
        )
        raise ScanLimitExceededError(
            msg, bytes_scanned=stats.bytes_scanned, limit=limit, query_id=stats.query_id
        )


class AthenaLogResult:
    """Rows of one finished Athena query, read page by page while iterating."""

    def __init__(
        self,
        engine: AthenaEngine,
        stats: QueryStats,
        output_location: str | None,
        started: float,
    ) -> None:
        self.stats = stats
        self._engine = engine
        self._output_location = output_location
        self._started = started

    def batches(self) -> Iterator[list[LogRecord]]:
        """Yield one batch per result page, then per block of the result file."""
        try:
            threshold = self._engine.settings.use_result_file_above_rows
            if threshold == 0:
                yield from self._file_batches(skip=0)
            else:
                yield from self._api_batches(threshold)
        finally:
            self.stats.elapsed_seconds = self._engine._clock() - self._started
            log.info(
                "reconciliation.engine.query_finished",
                engine=self.stats.engine,
                query_id=self.stats.query_id,
                rows=self.stats.rows,
                bytes_scanned=self.stats.bytes_scanned,
                elapsed_seconds=round(self.stats.elapsed_seconds, 3),
            )

    def _api_batches(self, threshold: int | None) -> Iterator[list[LogRecord]]:
        query_id = self.stats.query_id
        names: list[str] = []
        next_token: str | None = None
        first_page = True
        while True:
            request: dict[str, Any] = {"QueryExecutionId": query_id, "MaxResults": PAGE_SIZE}
            if next_token:
                request["NextToken"] = next_token
            with translate_errors(engine=self.stats.engine, query_id=query_id):
                page = self._engine.client.get_query_results(**request)
            rows = page["ResultSet"]["Rows"]
            if first_page:
                names = _column_names(page)
                rows = _drop_header(rows, names)
                first_page = False
            batch = [record_from_row(_api_row(names, row)) for row in rows]
            self.stats.rows += len(batch)
            if batch:
                yield batch
            next_token = page.get("NextToken")
            if not next_token:
                return
            if threshold is not None and self.stats.rows >= threshold:
                yield from self._file_batches(skip=self.stats.rows)
                return

    def _file_batches(self, *, skip: int) -> Iterator[list[LogRecord]]:
        query_id = self.stats.query_id
        if not self._output_location or self._engine.s3_client is None:
            msg = (
                f"Athena query {query_id} has more rows than use_result_file_above_rows, but "
                "no output location or S3 client is configured to read its result file."
            )
            raise QueryFailedError(msg, query_id=query_id)
        bucket, key = _split_s3_url(self._output_location)
        log.info(
            "reconciliation.engine.result_file_read", query_id=query_id, bucket=bucket, key=key
        )
        with translate_errors(engine=self.stats.engine, query_id=query_id):
            body = self._engine.s3_client.get_object(Bucket=bucket, Key=key)["Body"]
        batch_size = PAGE_SIZE
        with translate_errors(engine=self.stats.engine, query_id=query_id):
            text = io.TextIOWrapper(body, encoding="utf-8", newline="")
            reader = csv.reader(text)
            names = next(reader, None)
            if names is None:
                return
            batch: list[LogRecord] = []
            for index, values in enumerate(reader):
                if index < skip:
                    continue
                batch.append(record_from_row(dict(zip(names, values, strict=True))))
                if len(batch) >= batch_size:
                    self.stats.rows += len(batch)
                    yield batch
                    batch = []
            if batch:
                self.stats.rows += len(batch)
                yield batch


def _column_names(page: dict[str, Any]) -> list[str]:
    columns = page["ResultSet"].get("ResultSetMetadata", {}).get("ColumnInfo", [])
    return [column["Name"] for column in columns]


def _drop_header(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Drop the header row that starts the first page of a SELECT's results."""
    if rows and [datum.get("VarCharValue") for datum in rows[0]["Data"]] == names:
        return rows[1:]
    return rows


def _api_row(names: list[str], row: dict[str, Any]) -> dict[str, str | None]:
    # A NULL value is a datum without VarCharValue; "" is an empty string.
    return {
        name: datum.get("VarCharValue") for name, datum in zip(names, row["Data"], strict=True)
    }


def _split_s3_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        msg = f"The Athena output location {url!r} is not an s3://bucket/key URL."
        raise QueryFailedError(msg)
    return parsed.netloc, parsed.path.lstrip("/")
