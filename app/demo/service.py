"""Start `hookledger serve` for the demo: generated secrets, configuration and data directory.

The service runs as a child process on a free 127.0.0.1 port, exactly as a
user would start it, with the embedded defaults: SQLite in the data
directory and DuckDB over the local log directory. Its output goes to
`serve.log` in the data directory.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

SOURCE = "auth0"
SECRET_ENV = "HOOKLEDGER_DEMO_AUTH0_SECRET"
KINDS = ("login", "silent_login", "refresh", "password_grant")
# Every post-login execution; one metric per kind beside it.
LOGINS_METRIC = "logins"
KIND_METRICS = {kind: f"{SOURCE}_{kind}" for kind in KINDS}
# The demo replays a past day, so push timestamps are days old. A week is the
# largest tolerance a source accepts; a production source keeps the 300 s default.
REPLAY_TOLERANCE_SECONDS = 7 * 24 * 3600
STARTUP_SECONDS = 60.0


class ServiceStartError(RuntimeError):
    """`hookledger serve` exited or did not become ready; the message ends with its output."""


@dataclass(frozen=True)
class DemoPaths:
    """Files of one demo run inside its data directory."""

    data_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "hookledger.sqlite3"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs" / SOURCE

    @property
    def config(self) -> Path:
        return self.data_dir / "hookledger.toml"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "serve.log"


@dataclass(frozen=True)
class DemoCredentials:
    """The source's signing secret and the admin bearer token, fresh for each run."""

    secret: str
    admin_token: str

    @classmethod
    def generate(cls) -> DemoCredentials:
        return cls(
            secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
            admin_token="demo_" + secrets.token_urlsafe(32),
        )


def render_config(paths: DemoPaths) -> str:
    """Return the TOML configuration of the demo's service."""
    kinds = ", ".join(f'"{kind}"' for kind in KINDS)
    lines = [
        "# Written by `hookledger demo`: one Auth0 source, reconciled from the local log stream.",
        f"[sources.{SOURCE}]",
        'scheme = "standard-webhooks"',
        f'secrets_env = ["{SECRET_ENV}"]',
        'subject_pointer = "/data/user_id"',
        f"tolerance_seconds = {REPLAY_TOLERANCE_SECONDS}",
        "",
        f"[sources.{SOURCE}.reconciliation]",
        'mapping = "auth0"',
        'engine = "duckdb"',
        f"local_root = {_toml_string(str(paths.logs))}",
        "",
        f"[metrics.{LOGINS_METRIC}]",
        'description = "Post-login executions of every kind: interactive, SSO, silent, refresh, password grant."',
        f'source = "{SOURCE}"',
        f"event_types = [{kinds}]",
        "by_subject = true",
    ]
    for kind, metric in KIND_METRICS.items():
        lines += [
            "",
            f"[metrics.{metric}]",
            f'description = "Post-login executions of kind {kind}."',
            f'source = "{SOURCE}"',
            f'event_types = ["{kind}"]',
        ]
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hookledger_command() -> list[str]:
    """Return the command that runs this installation's `hookledger`."""
    script = Path(sys.executable).parent / "hookledger"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from app.cli import main; main()"]


@contextmanager
def running_service(
    paths: DemoPaths,
    credentials: DemoCredentials,
    *,
    extra_env: Mapping[str, str] | None = None,
    startup_seconds: float = STARTUP_SECONDS,
) -> Iterator[str]:
    """Write the configuration, start `hookledger serve`, wait for /readyz and yield its base URL."""
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(render_config(paths), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "HOOKLEDGER_DATA_DIR": str(paths.data_dir),
        "HOOKLEDGER_CONFIG": str(paths.config),
        "HOOKLEDGER_ADMIN_TOKEN": credentials.admin_token,
        "HOOKLEDGER_LOG_FORMAT": "json",
        "HOOKLEDGER_LOG_LEVEL": "warning",
        "HOOKLEDGER_WORKERS": "1",
        SECRET_ENV: credentials.secret,
        **(extra_env or {}),
    }
    env.pop("HOOKLEDGER_DATABASE_URL", None)
    command = [*hookledger_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"
    with paths.server_log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_until_ready(process, base_url, paths, startup_seconds)
            yield base_url
        finally:
            _stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, paths: DemoPaths, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise ServiceStartError(
                f"hookledger serve exited with status {process.returncode} before it was ready:\n"
                + _tail(paths.server_log)
            )
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"hookledger serve did not return 200 on /readyz within {seconds:.0f} s:\n" + _tail(paths.server_log)
            )
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server output)"
