"""The `hookledger` command line: serve, migrate, verify, reconcile, demo."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hookledger",
    help="Count what happens in other systems exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its command on `app` when imported.
from app.cli import serve as _serve  # noqa: E402,F401
from app.cli import verify as _verify  # noqa: E402,F401
from app.cli import demo as _demo  # noqa: E402,F401
from app.cli import reconcile as _reconcile  # noqa: E402,F401


def main() -> None:
    """Run the command line."""
    app()
