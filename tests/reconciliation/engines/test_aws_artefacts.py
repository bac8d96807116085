"""The example AWS files in scripts/athena: valid JSON, the documented settings, no real ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ATHENA_SCRIPTS = Path(__file__).resolve().parents[3] / "scripts" / "athena"


def load(name: str) -> dict:
    return json.loads((ATHENA_SCRIPTS / name).read_text())


def test_firehose_layout():
    destination = load("firehose.json")["ExtendedS3DestinationConfiguration"]

    assert destination["Prefix"] == "auth0-logs/dt=!{timestamp:yyyy-MM-dd}/"
    assert destination["CompressionFormat"] == "GZIP"
    processors = destination["ProcessingConfiguration"]["Processors"]
    assert [processor["Type"] for processor in processors] == ["AppendDelimiterToRecord"]


def test_iam_policy_actions():
    statements = load("iam-policy.json")["Statement"]
    actions = {
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }

    assert {
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
        "glue:GetTable",
        "glue:GetDatabase",
        "glue:GetPartitions",
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
    } <= actions
    assert not any("*" in action for action in actions)
    assert all(statement["Resource"] != "*" for statement in statements)


@pytest.mark.parametrize("name", ["firehose.json", "iam-policy.json", "auth0_logs.sql", "README.md"])
def test_no_real_account_ids(name: str):
    text = (ATHENA_SCRIPTS / name).read_text()

    assert not re.search(r"\b\d{12}\b", text)
    assert "<bucket>" in text
