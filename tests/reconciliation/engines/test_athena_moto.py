"""The Athena engine end to end against moto's in-process Athena and S3.

moto never runs the SQL: it returns results queued in its backend, in one page
without NextToken, and writes them as a CSV file to the output location. The
header row is queued here because real Athena returns one and moto adds none.
moto 5.2 writes each value between double quotes without escaping quotes inside
it, so the result-file test uses values without double quotes.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager
from moto.moto_api._internal.models import moto_api_backend

from app.reconciliation.engines.athena import AthenaEngine, AthenaSettings
from app.reconciliation.engines.base import RESULT_COLUMNS
from app.reconciliation.mappings import builtin_mappings
from tests.reconciliation.engines.log_fixtures import window_query

REGION = "us-east-1"
BUCKET = "hookledger-athena-results"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture
def polling_transitions() -> Any:
    """Make each execution report a running state before SUCCEEDED."""
    state_manager.set_transition(
        model_name="athena::execution", transition={"progression": "manual", "times": 1}
    )
    yield
    state_manager.unset_transition("athena::execution")


def queue_results(rows: list[list[str | None]]) -> None:
    def row(values: list[str | None]) -> dict[str, Any]:
        return {"Data": [{} if value is None else {"VarCharValue": value} for value in values]}

    moto_api_backend.set_athena_result(
        rows=[row(list(RESULT_COLUMNS))] + [row(values) for values in rows],
        column_info=[{"Name": name, "Type": "varchar"} for name in RESULT_COLUMNS],
        account_id=DEFAULT_ACCOUNT_ID,
        region=REGION,
    )


def make_engine(s3: Any, sleeps: list[float] | None = None, **overrides: Any) -> AthenaEngine:
    values: dict[str, Any] = {
        "workgroup": "primary",
        "output_location": f"s3://{BUCKET}/queries/",
        "region": REGION,
        "poll_initial_seconds": 0.01,
        "poll_max_seconds": 0.01,
        "deadline_seconds": 30.0,
        "use_result_file_above_rows": None,
    }
    values.update(overrides)
    athena = boto3.client("athena", region_name=REGION)
    recorded = sleeps if sleeps is not None else []
    return AthenaEngine(athena, AthenaSettings(**values), s3_client=s3, sleep=recorded.append)


def test_round_trip_through_api(aws, polling_transitions):
    """Start, poll through QUEUED and RUNNING, and read the queued rows through the API."""
    payload = json.dumps({"type": "s", "user_id": "auth0|alice"})
    queue_results(
        [
            ["900001", "login", None, "2024-01-15 09:00:00.000 UTC", None, None, None, None, "{}"],
            ["900002", "login", "auth0|alice", "2024-01-15 10:30:06.123 UTC", None, "tx-1",
             "sess-1", "client-web", payload],
        ]
    )
    sleeps: list[float] = []
    engine = make_engine(aws, sleeps)

    result = engine.query_logs(window_query(builtin_mappings()["auth0"]))
    records = [record for batch in result.batches() for record in batch]

    assert sleeps  # the engine waited at least once before SUCCEEDED
    assert [record.log_id for record in records] == ["900001", "900002"]
    assert records[0].subject is None
    assert records[1].payload == {"type": "s", "user_id": "auth0|alice"}
    assert records[1].transaction_id == "tx-1"
    assert result.stats.query_id
    stored = engine.client.get_query_execution(QueryExecutionId=result.stats.query_id)
    assert stored["QueryExecution"]["Status"]["State"] == "SUCCEEDED"


def test_round_trip_through_result_file(aws):
    """With use_result_file_above_rows=0 the rows come from the CSV that moto put in S3."""
    queue_results(
        [
            ["900003", "refresh", "auth0|bob", "2024-01-15 12:00:00.000 UTC", None, None, None,
             None, "{}"],
            ["900004", "signup", "auth0|dave", "2024-01-15 14:00:00.000 UTC", None, None,
             "sess-4", "client-web", "{}"],
        ]
    )
    engine = make_engine(aws, use_result_file_above_rows=0)

    result = engine.query_logs(window_query(builtin_mappings()["auth0"]))
    records = [record for batch in result.batches() for record in batch]

    assert [(record.log_id, record.event_type) for record in records] == [
        ("900003", "refresh"),
        ("900004", "signup"),
    ]
    assert records[0].session_id is None
    assert records[1].session_id == "sess-4"
    listed = aws.list_objects_v2(Bucket=BUCKET, Prefix="queries/")
    assert [item["Key"] for item in listed["Contents"]] == [
        f"queries/{result.stats.query_id}.csv"
    ]


def test_empty_result(aws):
    """With nothing queued moto returns no rows and no columns; the result is empty."""
    engine = make_engine(aws)

    result = engine.query_logs(window_query(builtin_mappings()["auth0"]))
    records = [record for batch in result.batches() for record in batch]
    executions = engine.client.list_query_executions()["QueryExecutionIds"]

    assert records == []
    assert result.stats.rows == 0
    assert result.stats.query_id in executions
