"""`hookledger verify` through typer's CliRunner: verdicts, explanations, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import app.cli.verify  # noqa: F401  registers the command
from app.cli import app as cli
from tests.ingest.schemes.senders import STANDARD_OLD_SECRET, STANDARD_SECRET, standard_headers, standard_v1
from tests.ingest.schemes.vectors import load_vectors, vector_case

runner = CliRunner()
CASES = [vector_case(vector) for vector in load_vectors()]
BODY = b'{"test": 2432232314}'
NOW_UNIX = 1614265330


def run(*arguments: str):
    return runner.invoke(cli, ["verify", *arguments])


def vector_arguments(case, body_file: Path) -> list[str]:
    body_file.write_bytes(case.body)
    arguments = ["--scheme", case.scheme, "--body-file", str(body_file), "--now", str(int(case.now.timestamp()))]
    for secret in case.secrets:
        arguments += ["--secret", secret]
    for name, value in case.headers.items():
        arguments += ["--header", f"{name}: {value}"]
    for key, value in case.options.items():
        if key == "public_url":
            continue  # derived from --url
        for item in value if isinstance(value, list) else [value]:
            arguments += ["--option", f"{key}={str(item).lower() if isinstance(item, bool) else item}"]
    if case.url:
        arguments += ["--url", case.url]
    return arguments


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_vector_through_cli(case, tmp_path: Path) -> None:
    result = run(*vector_arguments(case, tmp_path / "body"))
    assert result.exit_code == (0 if case.should_verify else 1), result.output
    first_line = result.output.splitlines()[0]
    assert first_line.startswith("valid: " if case.should_verify else "invalid: ")


def write_body(tmp_path: Path, body: bytes = BODY) -> str:
    path = tmp_path / "body.json"
    path.write_bytes(body)
    return str(path)


def standard_arguments(tmp_path: Path, headers: dict[str, str], *extra: str) -> list[str]:
    arguments = ["--scheme", "standard-webhooks", "--secret", STANDARD_SECRET, "--body-file", write_body(tmp_path)]
    for name, value in headers.items():
        arguments += ["--header", f"{name}: {value}"]
    return [*arguments, "--now", str(NOW_UNIX), *extra]


def test_valid_output(tmp_path: Path) -> None:
    headers = standard_headers(BODY, msg_id="msg_p5", timestamp=NOW_UNIX)
    result = run(*standard_arguments(tmp_path, headers))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "valid: standard-webhooks signature verified (key msg_p5 from header webhook-id)",
        f"  webhook-timestamp {NOW_UNIX} is within the 300 s tolerance",
        "  entry 1 (v1): signature matches secret 1",
    ]


def test_invalid_output_explains_each_entry(tmp_path: Path) -> None:
    headers = standard_headers(BODY, timestamp=NOW_UNIX)
    wrong = standard_v1(STANDARD_OLD_SECRET, "msg_1", NOW_UNIX, BODY)
    headers["webhook-signature"] = f"v2,abc {wrong}"
    result = run(*standard_arguments(tmp_path, headers, "--now", str(NOW_UNIX + 301)))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("invalid: timestamp_out_of_tolerance: The timestamp 1614265330")
    assert lines[1:] == [
        f"  timestamp {NOW_UNIX} in header webhook-timestamp is 301 s older than the server clock, "
        "more than the 300 s tolerance",
        "  entry 1 (v2): unknown version, skipped",
        "  entry 2 (v1): signature does not match any configured secret",
    ]


def test_rotated_secret(tmp_path: Path) -> None:
    headers = standard_headers(BODY, secret=STANDARD_OLD_SECRET, timestamp=NOW_UNIX)
    result = run(*standard_arguments(tmp_path, headers, "--secret", STANDARD_OLD_SECRET))
    assert result.exit_code == 0, result.output
    assert "matches secret 2" in result.output


def test_option_changes_tolerance(tmp_path: Path) -> None:
    headers = standard_headers(BODY, timestamp=NOW_UNIX - 400)
    assert run(*standard_arguments(tmp_path, headers)).exit_code == 1
    assert run(*standard_arguments(tmp_path, headers, "--option", "tolerance_seconds=600")).exit_code == 0


def test_body_from_standard_input(tmp_path: Path) -> None:
    headers = standard_headers(BODY, timestamp=NOW_UNIX)
    arguments = standard_arguments(tmp_path, headers)
    arguments[arguments.index("--body-file") + 1] = "-"
    result = runner.invoke(cli, ["verify", *arguments], input=BODY)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--header", "no colon here"], "is not 'Name: value'"),
        (["--header", "bad name: x"], "is not 'Name: value'"),
        (["--header", "Webhook-Id: again"], "given twice"),
        (["--option", "novalue"], "is not 'key=value'"),
        (["--option", "colour=blue"], "option 'colour' is unknown"),
        (["--option", "tolerance_seconds=soon"], "tolerance_seconds"),
    ],
)
def test_usage_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    result = run(*standard_arguments(tmp_path, standard_headers(BODY, timestamp=NOW_UNIX), *extra))
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_unknown_scheme(tmp_path: Path) -> None:
    result = run("--scheme", "paypal", "--secret", "s", "--body-file", write_body(tmp_path))
    assert result.exit_code == 2
    assert "'paypal' is unknown" in " ".join(result.output.split())


def test_unreadable_body_file(tmp_path: Path) -> None:
    result = run("--scheme", "github", "--secret", "s", "--body-file", str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_empty_secret(tmp_path: Path) -> None:
    result = run("--scheme", "github", "--secret", " ", "--body-file", write_body(tmp_path))
    assert result.exit_code == 2
    assert "is empty" in result.output


def test_secret_from_environment(tmp_path: Path) -> None:
    headers = standard_headers(BODY, msg_id="msg_env", timestamp=NOW_UNIX)
    body_file = tmp_path / "body.json"
    body_file.write_bytes(BODY)
    arguments = ["--scheme", "standard-webhooks", "--body-file", str(body_file), "--now", str(NOW_UNIX)]
    for name, value in headers.items():
        arguments += ["--header", f"{name}: {value}"]

    result = runner.invoke(cli, ["verify", *arguments, "--secret-env", "VERIFY_SECRET"], env={"VERIFY_SECRET": STANDARD_SECRET})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("valid:")

    wide = {"COLUMNS": "200"}
    missing = runner.invoke(cli, ["verify", *arguments, "--secret-env", "VERIFY_ABSENT"], env=wide)
    assert missing.exit_code == 2
    assert "VERIFY_ABSENT is not set" in missing.output

    no_secret = runner.invoke(cli, ["verify", *arguments], env=wide)
    assert no_secret.exit_code == 2
    assert "--secret-env" in no_secret.output
