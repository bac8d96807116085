"""`hookledger reconcile` in-process against a migrated database and DuckDB files."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.demo.firehose import write_log_stream
from app.demo.traffic import generate_day
from tests.support.signing import SECRET

SIM_DAY = date(2024, 3, 5)
START = "2024-03-05T00:00:00Z"
END = "2024-03-06T00:00:00Z"


@pytest.fixture
def environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    traffic = generate_day(SIM_DAY, users=10, seed=4, loss=0.3)
    write_log_stream(traffic.log_records, tmp_path / "logs", seed=1)
    config = tmp_path / "hookledger.toml"
    config.write_text(
        "[sources.auth0]\n"
        'scheme = "standard-webhooks"\n'
        'secrets_env = ["AUTH0_PUSH_SECRET"]\n'
        'subject_pointer = "/data/user_id"\n'
        "[sources.auth0.reconciliation]\n"
        'mapping = "auth0"\n'
        'local_root = "logs"\n',
        encoding="utf-8",
    )
    logged = sum(1 for login in traffic.logins if login.log_record is not None and login.logged_at.date() == SIM_DAY)
    return {
        "HOOKLEDGER_DATABASE_URL": database_url,
        "HOOKLEDGER_CONFIG": str(config),
        "HOOKLEDGER_DATA_DIR": str(tmp_path),
        "AUTH0_PUSH_SECRET": SECRET,
        "EXPECTED_GAPS": str(logged),
    }


def invoke(environment: dict[str, str], *args: str):
    return CliRunner().invoke(app, ["reconcile", "--source", "auth0", *args], env=environment)


def test_json_output_and_rerun(environment):
    first = invoke(environment, "--start", START, "--end", END, "--json")
    second = invoke(environment, "--start", START, "--json")

    assert first.exit_code == 0, first.output
    run = json.loads(first.stdout.strip())
    assert run["status"] == "succeeded"
    assert run["gaps_filled"] == int(environment["EXPECTED_GAPS"])
    assert run["engine"] == "duckdb"
    assert second.exit_code == 0, second.output
    rerun = json.loads(second.stdout.strip())
    assert rerun["id"] != run["id"]
    assert rerun["gaps_filled"] == 0


def test_human_output(environment):
    result = invoke(environment, "--start", START)

    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout
    assert "gaps filled" in result.stdout


def test_last_runs_newest_settled_windows_oldest_first(environment):
    result = invoke(environment, "--last", "2", "--json")

    assert result.exit_code == 0, result.output
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(runs) == 2
    starts = [datetime.fromisoformat(run["window_start"]) for run in runs]
    assert starts[1] - starts[0] == timedelta(days=1)
    assert datetime.fromisoformat(runs[1]["window_end"]) <= datetime.now(UTC) - timedelta(hours=1)


def test_failed_run_exits_1(environment, tmp_path: Path):
    broken = tmp_path / "logs" / f"dt={SIM_DAY.isoformat()}" / "broken.gz"
    broken.write_bytes(gzip.compress(b"{not json\n"))

    result = invoke(environment, "--start", START, "--json")

    assert result.exit_code == 1
    run = json.loads(result.stdout.strip())
    assert run["status"] == "failed"
    assert run["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--last", "2", "--start", START], "either --last or --start/--end"),
        (["--start", "2024-03-05T05:00:00Z"], "not aligned"),
        (["--start", "2024-03-05T00:00:00"], "no time zone"),
        (["--start", "0001-01-01T00:00:00Z"], "is before 2000-01-01T00:00:00Z"),
        (["--start", "0001-01-01T00:00:00+23:59"], "is before 2000-01-01T00:00:00Z"),
        (["--end", "0001-01-01T00:00:00Z"], "is before 2000-01-01T00:00:00Z"),
        (["--start", "9999-12-31T00:00:00Z"], "is after now"),
    ],
    ids=["last-and-start", "unaligned", "naive", "year-1", "year-1-offset", "year-1-end", "year-9999"],
)
def test_bad_arguments_exit_2(environment, args, message):
    result = invoke(environment, *args)

    assert result.exit_code == 2
    assert message in result.output


def test_unknown_source_exits_2(environment):
    result = CliRunner().invoke(app, ["reconcile", "--source", "nobody"], env=environment)

    assert result.exit_code == 2
    assert "nobody" in result.output


def test_out_of_range_window_is_one_line(environment):
    result = invoke(environment, "--start", "0001-01-01T00:00:00Z")

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: start 0001-01-01T00:00:00+00:00 is before 2000-01-01T00:00:00Z")
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, OverflowError)


def test_bad_window_is_reported_before_database(environment):
    """The window is checked before any query, so an unreachable database does not hide the real error."""
    unreachable = environment | {"HOOKLEDGER_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
    result = invoke(unreachable, "--start", "0001-01-01T00:00:00Z")

    assert result.exit_code == 2
    assert "is before 2000-01-01T00:00:00Z" in result.stderr
