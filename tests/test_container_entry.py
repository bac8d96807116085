"""The container image's entry command, run from a wheel in a clean virtualenv, and the Dockerfile.

No Docker engine runs on the development machines, so the image itself is not
built here. Instead the slow test below repeats the image's steps. It builds a
wheel from the files the builder stage copies and installs it with its
dependencies into a new virtualenv, as the final stage does. It copies
`migrations/` to where the Dockerfile's ENV points, and runs the Dockerfile's
ENTRYPOINT and CMD from outside the source tree. The other
tests parse the Dockerfile so that what is run here is what the image runs.

The install downloads the dependencies from the package index unless pip's
cache has them; it took about 40 s on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

EXPECTED_ENTRYPOINT = ["hookledger"]
EXPECTED_CMD = ["serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
CONTAINER_PORT = "8000"


@dataclass
class Stage:
    """One build stage: its base image, name and instructions as (keyword, arguments)."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"the stage FROM {self.image} has no {keyword} instruction"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                values[key] = value
        return values

    def copies(self) -> list[tuple[list[str], str, list[str]]]:
        """Return each COPY as (flags, destination, sources)."""
        result = []
        for arguments in self.all("COPY"):
            words = shlex.split(arguments)
            flags = [word for word in words if word.startswith("--")]
            paths = [word for word in words if not word.startswith("--")]
            result.append((flags, paths[-1], paths[:-1]))
        return result


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages, joining continued lines and dropping comments."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            stages[-1].instructions.append((keyword, arguments.strip()))
    return stages


def exec_form(arguments: str) -> list[str]:
    """Parse an exec-form (JSON array) instruction argument."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    arguments = stage.last("HEALTHCHECK")
    _, cmd, command = arguments.partition("CMD ")
    assert cmd, f"HEALTHCHECK has no CMD: {arguments}"
    return exec_form(command)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    return next(stage for stage in stages if stage.name == "builder")


# --- the Dockerfile -----------------------------------------------------------------------


def test_final_stage_is_slim_python(final: Stage) -> None:
    assert final.image == "python:3.11-slim"


def test_final_stage_runs_as_non_root_user(final: Stage) -> None:
    user = final.last("USER")

    assert user not in {"root", "0"}
    assert user.split(":")[0] not in {"root", "0"}
    assert any("useradd" in command and user in command for command in final.all("RUN"))


def test_final_stage_copies_no_tests_or_sources(final: Stage) -> None:
    """Only the builder's wheels and migrations/ reach the final image."""
    copies = final.copies()

    assert all(flags == ["--from=builder"] or sources == ["migrations"] for flags, _, sources in copies)
    assert not any("build-essential" in command or "gcc" in command for command in final.all("RUN"))


def test_entrypoint_and_cmd(final: Stage) -> None:
    assert exec_form(final.last("ENTRYPOINT")) == EXPECTED_ENTRYPOINT
    assert exec_form(final.last("CMD")) == EXPECTED_CMD


def test_migrations_dir_is_where_migrations_are_copied(final: Stage) -> None:
    destinations = [destination for _, destination, sources in final.copies() if sources == ["migrations"]]

    assert destinations == [final.env()["HOOKLEDGER_MIGRATIONS_DIR"]]


def test_workers_come_from_environment(final: Stage) -> None:
    assert int(final.env()["HOOKLEDGER_WORKERS"]) >= 1
    assert "--workers" not in exec_form(final.last("CMD"))


def test_healthcheck_requests_healthz_with_urllib(final: Stage) -> None:
    command = healthcheck_command(final)

    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert f"http://127.0.0.1:{CONTAINER_PORT}/healthz" in command[2]


def test_build_context_keeps_what_builder_copies(builder: Stage) -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    sources = [source for _, _, paths in builder.copies() for source in paths]

    assert sources
    for source in [*sources, "migrations"]:
        assert source not in ignored
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is missing"
    assert {"tests", ".venv", ".git"} <= ignored


def test_compose_migrates_before_serving() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load(COMPOSE.read_text())["services"]

    assert services["postgres"]["image"] == "postgres:16"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["hookledger"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("migrate", "hookledger"):
        url = services[name]["environment"]["HOOKLEDGER_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in url


# --- the entry command from a wheel ---------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """A virtualenv with the hookledger wheel installed, and the image's files around it."""

    venv: Path
    root: Path
    env: dict[str, str]

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def container_env(final: Stage, root: Path) -> dict[str, str]:
    """Return the image's ENV with its absolute paths moved under `root`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOOKLEDGER_")}
    for key, value in final.env().items():
        env[key] = str(root / value.lstrip("/")) if value.startswith("/") else value
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, builder: Stage, final: Stage) -> Installed:
    work = tmp_path_factory.mktemp("image")
    context = work / "context"
    context.mkdir()
    for _, destination, sources in builder.copies():
        for source in sources:
            # `COPY a b ./` keeps the names; `COPY app ./app` names the target.
            target = context / source if destination in ("./", ".") else context / destination
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / source, target)

    wheels = work / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(context)],
        check=True, capture_output=True, timeout=300,
    )
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(wheels.glob("hookledger-*.whl"))
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr[-3000:]

    root = work / "root"
    for _, destination, sources in final.copies():
        if sources == ["migrations"]:
            shutil.copytree(ROOT / "migrations", root / destination.lstrip("/"))
    return Installed(venv=venv, root=root, env=container_env(final, root))


def test_entry_command_serves_from_wheel(installed: Installed, final: Stage) -> None:
    """ENTRYPOINT + CMD from an installed wheel return 200 on /healthz and /readyz, and the HEALTHCHECK passes.

    Slow: the `installed` fixture builds the wheel and installs its dependencies first.
    """
    port = str(free_port())
    arguments = [port if item == CONTAINER_PORT else item for item in exec_form(final.last("CMD"))]
    arguments = ["127.0.0.1" if item == "0.0.0.0" else item for item in arguments]
    command = [str(installed.bin(exec_form(final.last("ENTRYPOINT"))[0])), *arguments]
    data_dir = Path(installed.env["HOOKLEDGER_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)

    process = subprocess.Popen(
        command, env=installed.env, cwd=data_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"hookledger serve exited: {process.stdout.read() if process.stdout else ''}"
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no answer on /healthz within 60 s"
            time.sleep(0.2)

        ready = httpx.get(f"{base_url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"

        probe = healthcheck_command(final)
        probe = [str(installed.bin("python")), probe[1], probe[2].replace(f":{CONTAINER_PORT}/", f":{port}/")]
        assert subprocess.run(probe, env=installed.env, timeout=30).returncode == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_wheel_is_imported_from_the_virtualenv(installed: Installed) -> None:
    located = subprocess.run(
        [str(installed.bin("python")), "-c", "import app; print(app.__file__)"],
        env=installed.env, cwd=installed.root, capture_output=True, text=True, timeout=60, check=True,
    )

    assert Path(located.stdout.strip()).is_relative_to(installed.venv)


def test_wheel_ships_sql_and_driver_files(installed: Installed) -> None:
    located = subprocess.run(
        [str(installed.bin("python")), "-c",
         "import importlib.resources as r; "
         "print(r.files('app.reconciliation').joinpath('sql', 'auth0_eventbridge.sql').is_file(), "
         "r.files('app.demo').joinpath('action_driver.js').is_file())"],
        env=installed.env, cwd=installed.root, capture_output=True, text=True, timeout=60, check=True,
    )

    assert located.stdout.split() == ["True", "True"]


def test_migrate_without_migrations_dir_names_the_variable(installed: Installed, tmp_path: Path) -> None:
    """Outside a source checkout the migrations are found only through HOOKLEDGER_MIGRATIONS_DIR."""
    env = {key: value for key, value in installed.env.items() if key != "HOOKLEDGER_MIGRATIONS_DIR"}
    env["HOOKLEDGER_DATA_DIR"] = str(tmp_path)

    result = subprocess.run(
        [str(installed.bin("hookledger")), "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "HOOKLEDGER_MIGRATIONS_DIR" in result.stderr
