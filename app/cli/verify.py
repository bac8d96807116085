"""`hookledger verify`: check one delivery's signature offline and explain why it fails.

Exit status: 0 when the signature verifies, 1 when it does not, 2 for a usage
error (bad header syntax, unreadable body file, unknown scheme, bad option).
"""

from __future__ import annotations

import os

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer

from app.cli import app as cli
from app.ingest.schemes import SCHEMES, Delivery, SchemeConfigError
from app.ingest.schemes.explain import explain

HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def parse_headers(values: list[str]) -> dict[str, str]:
    """Parse `Name: value` arguments into lower-cased header names; raise `typer.BadParameter`."""
    headers: dict[str, str] = {}
    for value in values:
        name, colon, header_value = value.partition(":")
        name = name.strip()
        if not colon or not HEADER_NAME.fullmatch(name):
            raise typer.BadParameter(f"{value!r} is not 'Name: value'; give each header as --header 'Name: value'.")
        if name.lower() in headers:
            raise typer.BadParameter(f"header {name} is given twice; give each header once.")
        headers[name.lower()] = header_value.strip()
    return headers


def parse_options(values: list[str]) -> dict[str, Any]:
    """Parse `key=value` arguments; a key given several times becomes a list."""
    options: dict[str, Any] = {}
    for value in values:
        key, equals, option_value = value.partition("=")
        key = key.strip()
        if not equals or not key:
            raise typer.BadParameter(f"{value!r} is not 'key=value'; give each option as --option key=value.")
        if key in options:
            previous = options[key]
            options[key] = [*previous, option_value] if isinstance(previous, list) else [previous, option_value]
        else:
            options[key] = option_value
    return options


def read_body(path: Path) -> bytes:
    """Read the body file, or standard input for `-`; raise `typer.BadParameter`."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}.", param_hint="--body-file") from exc


def url_without_query(url: str) -> str:
    """Return `url` with its query string and fragment removed."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@cli.command("verify")
def verify_command(
    scheme: Annotated[str, typer.Option("--scheme", help=f"Signature scheme: {', '.join(SCHEMES)}.")],
    body_file: Annotated[
        Path, typer.Option("--body-file", help="File with the raw request body, byte for byte; '-' reads standard input.")
    ],
    header: Annotated[
        list[str] | None, typer.Option("--header", help="A request header as 'Name: value'; repeat for each header.")
    ] = None,
    now: Annotated[
        int | None,
        typer.Option(
            "--now",
            min=0,
            max=253402300799,
            help="Current time in Unix seconds for the timestamp check; default: the system clock.",
        ),
    ] = None,
    url: Annotated[
        str,
        typer.Option(
            "--url",
            help="The request URL as received; Twilio signs its query string. Without --option public_url, "
            "this URL minus its query string is also used as public_url.",
        ),
    ] = "",
    option: Annotated[
        list[str] | None, typer.Option("--option", help="A scheme option as key=value, as in the source's TOML table.")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="Signing secret; repeat for each secret in rotation. Visible to other users in the process "
            "list and kept in shell history: prefer --secret-env.",
        ),
    ] = None,
    secret_env: Annotated[
        list[str] | None,
        typer.Option("--secret-env", help="Name of an environment variable holding a signing secret; repeatable."),
    ] = None,
) -> None:
    """Check one delivery's signature offline and explain the result entry by entry."""
    secrets = list(secret or [])
    for variable in secret_env or []:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise typer.BadParameter(f"environment variable {variable} is not set or empty.", param_hint="--secret-env")
        secrets.append(value)
    if not secrets:
        raise typer.BadParameter("give at least one --secret-env NAME or --secret VALUE.", param_hint="--secret-env")
    if scheme not in SCHEMES:
        raise typer.BadParameter(f"{scheme!r} is unknown; known schemes: {', '.join(sorted(SCHEMES))}.", param_hint="--scheme")
    headers = parse_headers(header or [])
    options = parse_options(option or [])
    if scheme == "twilio" and "public_url" not in options and url:
        options["public_url"] = url_without_query(url)
    body = read_body(body_file)
    clock = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)

    delivery = Delivery(headers=headers, body=body, url=url, content_type=headers.get("content-type", ""))
    try:
        explanation = explain(scheme, secrets, options, delivery, clock)
    except SchemeConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--secret-env/--secret/--option") from exc

    typer.echo(explanation.summary())
    for step in explanation.steps:
        typer.echo(f"  {step}")
    raise typer.Exit(0 if explanation.valid else 1)
