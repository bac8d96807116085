"""The Athena engine against botocore's Stubber: polling, retries, errors and paging."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from app.reconciliation.engines.athena import (
    AthenaEngine,
    AthenaSettings,
    athena_parameters,
    token_for_attempt,
)
from app.reconciliation.engines.base import RESULT_COLUMNS, LogRecord, parse_timestamp
from app.reconciliation.engines.errors import (
    QueryFailedError,
    QueryTimeoutError,
    QueryTransientError,
    ScanLimitExceededError,
)
from app.reconciliation.engines.factory import build_engine
from app.reconciliation.mappings import LogMapping, builtin_mappings
from tests.reconciliation.engines.log_fixtures import TOKEN, window_query

QUERY_ID = "11111111-2222-3333-4444-555555555555"
OUTPUT = "s3://hookledger-results/athena/"


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class FakeTime:
    """A monotonic clock that advances only when the engine sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def client() -> Any:
    return boto3.client("athena", region_name="us-east-1")


@pytest.fixture
def stubber(client: Any) -> Any:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def mapping() -> LogMapping:
    return builtin_mappings()["auth0"]


def settings(**overrides: Any) -> AthenaSettings:
    values: dict[str, Any] = {
        "workgroup": "hookledger",
        "database": "hookledger",
        "output_location": OUTPUT,
        "region": "us-east-1",
        "max_bytes_scanned": 1_000_000,
        "deadline_seconds": 60.0,
        "poll_initial_seconds": 0.5,
        "poll_max_seconds": 4.0,
        "use_result_file_above_rows": None,
        "max_retries": 2,
    }
    values.update(overrides)
    return AthenaSettings(**values)


def make_engine(client: Any, fake: FakeTime, **overrides: Any) -> AthenaEngine:
    return AthenaEngine(
        client,
        settings(**overrides),
        sleep=fake.sleep,
        clock=fake.clock,
        random=lambda: 1.0,
    )


def start_params(mapping: LogMapping, token: str = TOKEN) -> dict[str, Any]:
    return {
        "QueryString": mapping.render_sql('"hookledger"."auth0_logs"'),
        "ClientRequestToken": token,
        "QueryExecutionContext": {"Database": "hookledger"},
        "WorkGroup": "hookledger",
        "ExecutionParameters": [
            "'2024-01-14'",
            "'2024-01-16'",
            "'2024-01-15T00:00:00.000Z'",
            "'2024-01-16T00:00:00.000Z'",
        ],
        "ResultConfiguration": {"OutputLocation": OUTPUT},
        "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": False}},
    }


def execution(
    state: str,
    query_id: str = QUERY_ID,
    *,
    bytes_scanned: int = 2048,
    error: dict[str, Any] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if error is not None:
        status["AthenaError"] = error
    if reason is not None:
        status["StateChangeReason"] = reason
    return {
        "QueryExecution": {
            "QueryExecutionId": query_id,
            "Status": status,
            "Statistics": {"DataScannedInBytes": bytes_scanned},
            "ResultConfiguration": {"OutputLocation": f"{OUTPUT}{query_id}.csv"},
        }
    }


def datum(value: str | None) -> dict[str, str]:
    return {} if value is None else {"VarCharValue": value}


def result_row(values: list[str | None]) -> dict[str, Any]:
    return {"Data": [datum(value) for value in values]}


def data_values(index: int, subject: str | None = "auth0|alice") -> list[str | None]:
    payload = json.dumps({"type": "s", "user_id": subject, "note": 'quote " and, comma'})
    return [
        f"9000{index:02d}",
        "login",
        subject,
        f"2024-01-15 10:{index:02d}:00.000 UTC",
        None,
        None,
        f"sess-{index}",
        "client-web",
        payload,
    ]


def column_info() -> list[dict[str, str]]:
    types = {"occurred_at": "timestamp with time zone"}
    return [{"Name": name, "Type": types.get(name, "varchar")} for name in RESULT_COLUMNS]


def results_page(
    rows: list[list[str | None]], *, header: bool, next_token: str | None
) -> dict[str, Any]:
    all_rows = [result_row(list(RESULT_COLUMNS))] if header else []
    all_rows += [result_row(values) for values in rows]
    page: dict[str, Any] = {
        "ResultSet": {"Rows": all_rows, "ResultSetMetadata": {"ColumnInfo": column_info()}}
    }
    if next_token:
        page["NextToken"] = next_token
    return page


def collect(result: Any) -> list[LogRecord]:
    return [record for batch in result.batches() for record in batch]


def expect_success(stubber: Any, mapping: LogMapping, token: str = TOKEN) -> None:
    stubber.add_response(
        "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping, token)
    )
    stubber.add_response(
        "get_query_execution", execution("SUCCEEDED"), {"QueryExecutionId": QUERY_ID}
    )


class TestPolling:
    def test_queued_after_running_keeps_waiting(self, client, stubber, mapping):
        """QUEUED → RUNNING → QUEUED → SUCCEEDED ends in success after three jittered waits."""
        fake = FakeTime()
        stubber.add_response(
            "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping)
        )
        for state in ("QUEUED", "RUNNING", "QUEUED", "SUCCEEDED"):
            stubber.add_response(
                "get_query_execution", execution(state), {"QueryExecutionId": QUERY_ID}
            )
        stubber.add_response(
            "get_query_results",
            results_page([data_values(1)], header=True, next_token=None),
            {"QueryExecutionId": QUERY_ID, "MaxResults": 1000},
        )

        result = make_engine(client, fake).query_logs(window_query(mapping))
        records = collect(result)

        assert [record.log_id for record in records] == ["900001"]
        assert fake.sleeps == [0.5, 1.0, 2.0]
        assert result.stats.query_id == QUERY_ID

    def test_backoff_is_jittered_and_capped(self, client, stubber, mapping):
        fake = FakeTime()
        engine = AthenaEngine(
            client, settings(), sleep=fake.sleep, clock=fake.clock, random=lambda: 0.0
        )
        stubber.add_response(
            "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping)
        )
        for state in ["RUNNING"] * 5 + ["SUCCEEDED"]:
            stubber.add_response(
                "get_query_execution", execution(state), {"QueryExecutionId": QUERY_ID}
            )

        engine.query_logs(window_query(mapping))

        # random() == 0 waits half of each delay: 0.5, 1, 2, 4, 4 (capped at poll_max).
        assert fake.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0]

    def test_deadline_stops_query(self, client, stubber, mapping):
        """At the deadline the engine calls stop_query_execution and raises QueryTimeoutError."""
        fake = FakeTime()
        stubber.add_response(
            "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping)
        )
        # Waits of 0.5, 1, 2 and the remaining 1.5 seconds: five polls, then the deadline.
        for _ in range(5):
            stubber.add_response(
                "get_query_execution", execution("RUNNING"), {"QueryExecutionId": QUERY_ID}
            )
        stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": QUERY_ID})

        engine = make_engine(client, fake, deadline_seconds=5.0)
        with pytest.raises(QueryTimeoutError) as raised:
            engine.query_logs(window_query(mapping))

        assert raised.value.query_id == QUERY_ID
        assert fake.sleeps == [0.5, 1.0, 2.0, 1.5]


class TestFailures:
    def test_retryable_failure_resubmits(self, client, stubber, mapping):
        """A FAILED query marked retryable is submitted again under a new token."""
        fake = FakeTime()
        second_id = "99999999-2222-3333-4444-555555555555"
        stubber.add_response(
            "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping)
        )
        stubber.add_response(
            "get_query_execution",
            execution(
                "FAILED",
                error={"ErrorCategory": 1, "ErrorType": 401, "Retryable": True,
                       "ErrorMessage": "Internal service error"},
            ),
            {"QueryExecutionId": QUERY_ID},
        )
        stubber.add_response(
            "start_query_execution",
            {"QueryExecutionId": second_id},
            start_params(mapping, token=f"{TOKEN}-retry1"),
        )
        stubber.add_response(
            "get_query_execution", execution("SUCCEEDED", second_id), {"QueryExecutionId": second_id}
        )
        stubber.add_response(
            "get_query_results",
            results_page([data_values(1)], header=True, next_token=None),
            {"QueryExecutionId": second_id, "MaxResults": 1000},
        )

        result = make_engine(client, fake).query_logs(window_query(mapping))

        assert [record.log_id for record in collect(result)] == ["900001"]
        assert result.stats.query_id == second_id

    def test_not_retryable_failure(self, client, stubber, mapping):
        stubber.add_response(
            "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping)
        )
        stubber.add_response(
            "get_query_execution",
            execution(
                "FAILED",
                error={"ErrorCategory": 2, "ErrorType": 1006, "Retryable": False,
                       "ErrorMessage": "TABLE_NOT_FOUND: line 1:8: Table does not exist"},
            ),
            {"QueryExecutionId": QUERY_ID},
        )

        with pytest.raises(QueryFailedError, match="TABLE_NOT_FOUND") as raised:
            make_engine(client, FakeTime()).query_logs(window_query(mapping))

        assert raised.value.query_id == QUERY_ID

    def test_retryable_failures_exhausted(self, client, stubber, mapping):
        failed = execution(
            "FAILED",
            error={"ErrorCategory": 1, "ErrorType": 401, "Retryable": True, "ErrorMessage": "busy"},
        )
        for attempt in range(2):
            token = token_for_attempt(TOKEN, attempt)
            stubber.add_response(
                "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping, token)
            )
            stubber.add_response("get_query_execution", failed, {"QueryExecutionId": QUERY_ID})

        engine = make_engine(client, FakeTime(), max_retries=1)
        with pytest.raises(QueryTransientError, match="after 2 attempts"):
            engine.query_logs(window_query(mapping))

    @pytest.mark.parametrize("code", ["ThrottlingException", "TooManyRequestsException"])
    def test_throttling_is_transient(self, client, stubber, mapping, code):
        stubber.add_client_error(
            "start_query_execution", service_error_code=code, service_message="Rate exceeded",
            http_status_code=400,
        )

        with pytest.raises(QueryTransientError, match=code) as raised:
            make_engine(client, FakeTime()).query_logs(window_query(mapping))

        assert isinstance(raised.value.__cause__, botocore.exceptions.ClientError)

    def test_invalid_request_is_failed(self, client, stubber, mapping):
        stubber.add_client_error(
            "start_query_execution", service_error_code="InvalidRequestException",
            service_message="line 1:1: mismatched input", http_status_code=400,
        )

        with pytest.raises(QueryFailedError, match="InvalidRequestException"):
            make_engine(client, FakeTime()).query_logs(window_query(mapping))

    def test_cancelled_by_scan_cutoff(self, client, stubber, mapping):
        stubber.add_response(
            "start_query_execution", {"QueryExecutionId": QUERY_ID}, start_params(mapping)
        )
        stubber.add_response(
            "get_query_execution",
            execution("CANCELLED", bytes_scanned=10_485_760,
                      reason="Query cancelled! : Bytes scanned limit was exceeded"),
            {"QueryExecutionId": QUERY_ID},
        )

        with pytest.raises(ScanLimitExceededError) as raised:
            make_engine(client, FakeTime()).query_logs(window_query(mapping))

        assert raised.value.bytes_scanned == 10_485_760


class TestScanCap:
    def test_bytes_scanned_recorded(self, client, stubber, mapping):
        expect_success(stubber, mapping)
        stubber.add_response(
            "get_query_results",
            results_page([], header=True, next_token=None),
            {"QueryExecutionId": QUERY_ID, "MaxResults": 1000},
        )

        result = make_engine(client, FakeTime()).query_logs(window_query(mapping))

        assert collect(result) == []
        assert result.stats.bytes_scanned == 2048
        assert result.stats.engine == "athena"

    def test_cap_exceeded(self, client, stubber, mapping):
        expect_success(stubber, mapping)

        engine = make_engine(client, FakeTime(), max_bytes_scanned=1024)
        with pytest.raises(ScanLimitExceededError) as raised:
            engine.query_logs(window_query(mapping))

        assert raised.value.bytes_scanned == 2048
        assert raised.value.limit == 1024


class TestResults:
    def test_three_pages_header_only_first(self, client, stubber, mapping):
        """Page 1 starts with the header; pages 2 and 3 do not, and no data row is dropped."""
        expect_success(stubber, mapping)
        pages = [
            results_page([data_values(1), data_values(2)], header=True, next_token="t1"),
            results_page([data_values(3), data_values(4, subject=None)], header=False,
                         next_token="t2"),
            results_page([data_values(5)], header=False, next_token=None),
        ]
        tokens = [None, "t1", "t2"]
        for page, token in zip(pages, tokens, strict=True):
            params: dict[str, Any] = {"QueryExecutionId": QUERY_ID, "MaxResults": 1000}
            if token:
                params["NextToken"] = token
            stubber.add_response("get_query_results", page, params)

        result = make_engine(client, FakeTime()).query_logs(window_query(mapping))
        batches = list(result.batches())
        records = [record for batch in batches for record in batch]

        assert [len(batch) for batch in batches] == [2, 2, 1]
        assert [record.log_id for record in records] == [
            "900001", "900002", "900003", "900004", "900005"
        ]
        assert result.stats.rows == 5

    def test_values_converted(self, client, stubber, mapping):
        """Strings become typed fields; an absent VarCharValue is None."""
        expect_success(stubber, mapping)
        stubber.add_response(
            "get_query_results",
            results_page([data_values(7, subject=None)], header=True, next_token=None),
            {"QueryExecutionId": QUERY_ID, "MaxResults": 1000},
        )

        (record,) = collect(make_engine(client, FakeTime()).query_logs(window_query(mapping)))

        assert record.subject is None
        assert record.transaction_id is None
        assert record.idempotency_key is None
        assert record.session_id == "sess-7"
        assert record.occurred_at == datetime(2024, 1, 15, 10, 7, tzinfo=UTC)
        assert record.payload["note"] == 'quote " and, comma'

    def test_switches_to_result_file(self, client, stubber, mapping):
        """After use_result_file_above_rows rows, the rest comes from the CSV in S3."""
        expect_success(stubber, mapping)
        stubber.add_response(
            "get_query_results",
            results_page([data_values(1), data_values(2)], header=True, next_token="t1"),
            {"QueryExecutionId": QUERY_ID, "MaxResults": 1000},
        )
        all_rows = [data_values(index) for index in range(1, 6)]

        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="hookledger-results")
            s3.put_object(
                Bucket="hookledger-results", Key=f"athena/{QUERY_ID}.csv", Body=athena_csv(all_rows)
            )
            engine = AthenaEngine(
                client, settings(use_result_file_above_rows=2), s3_client=s3,
                sleep=FakeTime().sleep,
            )
            result = engine.query_logs(window_query(mapping))
            records = collect(result)

        assert [record.log_id for record in records] == [
            "900001", "900002", "900003", "900004", "900005"
        ]
        assert records[4].payload["note"] == 'quote " and, comma'
        assert result.stats.rows == 5

    def test_result_file_needs_s3_client(self, client, stubber, mapping):
        expect_success(stubber, mapping)

        engine = AthenaEngine(client, settings(use_result_file_above_rows=0), sleep=FakeTime().sleep)
        result = engine.query_logs(window_query(mapping))

        with pytest.raises(QueryFailedError, match="result file"):
            collect(result)


def athena_csv(rows: list[list[str | None]]) -> bytes:
    """Render rows the way Athena writes result files: every non-NULL value quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for values in rows:
        writer.writerow(["" if value is None else value for value in values])
    return buffer.getvalue().encode()


class TestHelpers:
    def test_parameters_are_quoted_literals(self, mapping):
        parameters = athena_parameters(window_query(mapping))

        assert parameters == [
            "'2024-01-14'",
            "'2024-01-16'",
            "'2024-01-15T00:00:00.000Z'",
            "'2024-01-16T00:00:00.000Z'",
        ]

    def test_retry_token_stays_within_limit(self):
        long_token = "t" * 128

        retried = token_for_attempt(long_token, 3)

        assert len(retried) == 128
        assert retried.endswith("-retry3")
        assert token_for_attempt(TOKEN, 0) == TOKEN

    def test_short_token_rejected(self):
        with pytest.raises(ValueError, match="32 to 128"):
            token_for_attempt("short", 0)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-01-15 10:30:06.123 UTC", datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)),
            ("2024-01-15 12:30:06.123 +02:00", datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)),
            ("2024-01-15 11:30:06.123 Europe/Paris",
             datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)),
            ("2024-01-15T10:30:06.123Z", datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)),
            ("2024-01-15 10:30:06.123", datetime(2024, 1, 15, 10, 30, 6, 123000, tzinfo=UTC)),
        ],
    )
    def test_parse_timestamp(self, text, expected):
        parsed = parse_timestamp(text)

        assert parsed == expected
        assert parsed.tzinfo is UTC

    def test_factory_builds_athena(self, mapping):
        athena_mapping = mapping.model_copy(update={"engine": "athena"})

        engine = build_engine(athena_mapping, settings(use_result_file_above_rows=100))

        assert isinstance(engine, AthenaEngine)
        assert engine.s3_client is not None
        retries = engine.client.meta.config.retries
        assert retries["mode"] == "standard"
        assert engine.settings.workgroup == "hookledger"

    def test_settings_from_environment(self, monkeypatch):
        monkeypatch.setenv("HOOKLEDGER_ATHENA_WORKGROUP", "recon")
        monkeypatch.setenv("HOOKLEDGER_ATHENA_MAX_BYTES_SCANNED", "5000")
        monkeypatch.setenv("HOOKLEDGER_ATHENA_USE_RESULT_FILE_ABOVE_ROWS", "0")

        loaded = AthenaSettings()

        assert loaded.workgroup == "recon"
        assert loaded.max_bytes_scanned == 5000
        assert loaded.use_result_file_above_rows == 0
