"""Tests for scripts/deploy_auth0_action.py against an in-process fake of the Management API.

Every request goes through `httpx.MockTransport` into `FakeAuth0`, which
keeps Actions and post-login bindings in memory, so no call leaves the
process. Time is a `FakeTime` whose `sleep` only moves its clock.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "deploy_auth0_action.py"
ACTION_CODE = (ROOT / "hooks_js" / "post-login.js").read_text(encoding="utf-8")
DOMAIN = "example-tenant.test"
TOKEN = "fake-management-token"
HOOK_URL = "https://ledger.example.com/v1/hooks/auth0"
HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BINDINGS_PATH = "/api/v2/actions/triggers/post-login/bindings"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_auth0_action", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


deploy_script = load_script()


class FakeTime:
    """A clock in unix seconds whose `sleep` advances it and records each wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeAuth0:
    """The parts of the Auth0 Management API that the script uses, kept in memory."""

    def __init__(
        self,
        time: FakeTime,
        *,
        actions: list[dict[str, Any]] | None = None,
        bindings: list[dict[str, Any]] | None = None,
        build_statuses: list[str] | None = None,
    ) -> None:
        self.time = time
        self.actions = {action["id"]: dict(action) for action in actions or []}
        self.bindings = [dict(binding) for binding in bindings or []]
        # Statuses returned by successive GETs of an Action; the last one repeats.
        self.build_statuses = deque(build_statuses or ["built"])
        self.requests: list[httpx.Request] = []
        self.rate_limited: dict[tuple[str, str], deque[dict[str, str]]] = {}
        self.deploy_rejections = 0
        self.deployed: list[str] = []
        self.next_binding = 1

    def rate_limit(self, method: str, path: str, *headers: dict[str, str]) -> None:
        """Return 429 with these headers to the next len(headers) requests to `method path`."""
        self.rate_limited[(method, path)] = deque(headers)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def writes(self) -> list[httpx.Request]:
        return [request for request in self.requests if request.method != "GET"]

    def calls(self) -> list[str]:
        return [f"{request.method} {request.url.path}" for request in self.requests]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.host == DOMAIN
        assert request.url.scheme == "https"
        key = (request.method, request.url.path)
        pending = self.rate_limited.get(key)
        if pending:
            return httpx.Response(
                429, headers=pending.popleft(), json={"message": "Too Many Requests"}
            )
        if request.url.path == "/oauth/token":
            return self.token(request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"message": "Missing or invalid token"})
        return self.route(request)

    def token(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body != {
            "grant_type": "client_credentials",
            "client_id": "m2m-client",
            "client_secret": "m2m-secret",
            "audience": f"https://{DOMAIN}/api/v2/",
        }:
            return httpx.Response(401, json={"error": "access_denied"})
        return httpx.Response(200, json={"access_token": TOKEN, "token_type": "Bearer"})

    def route(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        parts = path.strip("/").split("/")
        if path == "/api/v2/actions/actions" and method == "GET":
            name = request.url.params.get("actionName")
            found = [action for action in self.actions.values() if action["name"] == name]
            return httpx.Response(200, json={"actions": found, "total": len(found)})
        if path == "/api/v2/actions/actions" and method == "POST":
            body = json.loads(request.content)
            action = {"id": f"act_{len(self.actions) + 1}", "status": "pending", **body}
            self.actions[action["id"]] = action
            return httpx.Response(201, json=action)
        if parts[:4] == ["api", "v2", "actions", "actions"] and len(parts) == 5:
            return self.action_by_id(request, parts[4])
        if parts[:4] == ["api", "v2", "actions", "actions"] and parts[5:] == ["deploy"]:
            return self.deploy(parts[4])
        if path == BINDINGS_PATH and method == "GET":
            page = int(request.url.params.get("page", "0"))
            per_page = int(request.url.params.get("per_page", "20"))
            window = self.bindings[page * per_page : (page + 1) * per_page]
            return httpx.Response(
                200,
                json={
                    "bindings": window,
                    "total": len(self.bindings),
                    "page": page,
                    "per_page": per_page,
                },
            )
        if path == BINDINGS_PATH and method == "PATCH":
            return self.patch_bindings(json.loads(request.content))
        return httpx.Response(404, json={"message": f"no route {method} {path}"})

    def action_by_id(self, request: httpx.Request, action_id: str) -> httpx.Response:
        action = self.actions.get(action_id)
        if action is None:
            return httpx.Response(404, json={"message": "Action not found"})
        if request.method == "PATCH":
            action.update(json.loads(request.content))
            action["status"] = "pending"
            return httpx.Response(200, json=action)
        status = (
            self.build_statuses.popleft()
            if len(self.build_statuses) > 1
            else self.build_statuses[0]
        )
        action["status"] = status
        return httpx.Response(200, json=action)

    def deploy(self, action_id: str) -> httpx.Response:
        if self.deploy_rejections:
            self.deploy_rejections -= 1
            return httpx.Response(
                400,
                json={"message": "A draft must be in the 'built' state before it can be deployed."},
            )
        if self.actions.get(action_id, {}).get("status") != "built":
            return httpx.Response(400, json={"message": "not built"})
        self.deployed.append(action_id)
        return httpx.Response(200, json={"id": "ver_1", "action_id": action_id, "deployed": True})

    def patch_bindings(self, body: dict[str, Any]) -> httpx.Response:
        by_id = {binding["id"]: binding for binding in self.bindings}
        updated = []
        for entry in body["bindings"]:
            ref = entry["ref"]
            if ref["type"] == "binding_id":
                if ref["value"] not in by_id:
                    return httpx.Response(400, json={"message": f"unknown binding {ref['value']}"})
                updated.append(by_id[ref["value"]])
            elif ref["type"] == "action_id":
                action = self.actions[ref["value"]]
                updated.append(
                    {
                        "id": f"bind_new_{self.next_binding}",
                        "action": {"id": action["id"], "name": action["name"]},
                        "display_name": entry.get("display_name"),
                    }
                )
                self.next_binding += 1
            else:
                return httpx.Response(400, json={"message": f"unsupported ref {ref['type']}"})
        self.bindings = updated
        return httpx.Response(200, json={"bindings": updated})


def binding(binding_id: str, action_id: str, name: str) -> dict[str, Any]:
    return {
        "id": binding_id,
        "trigger_id": "post-login",
        "display_name": name,
        "action": {"id": action_id, "name": name},
    }


EXISTING_ACTION = {
    "id": "act_existing",
    "name": "hookledger-post-login",
    "code": "exports.onExecutePostLogin = async () => {};",
    "runtime": "node18",
    "status": "built",
}


def run_script(
    fake: FakeAuth0, *args: str, credentials: tuple[str, ...] = ("--token", TOKEN)
) -> tuple[int, list[str], list[str]]:
    """Run the script's `run` against `fake`; return exit code, stdout lines and stderr lines."""
    out: list[str] = []
    err: list[str] = []
    code = deploy_script.run(
        ["--domain", DOMAIN, *credentials, *args],
        transport=fake.transport(),
        sleep=fake.time.sleep,
        clock=fake.time.clock,
        out=out.append,
        err=err.append,
        environ={},
    )
    return code, out, err


def request_json(fake: FakeAuth0, method: str, path: str) -> Any:
    matches = [r for r in fake.requests if r.method == method and r.url.path == path]
    assert len(matches) == 1, fake.calls()
    return json.loads(matches[0].content)


WITH_SECRETS = ("--hookledger-url", HOOK_URL, "--hookledger-secret", HOOK_SECRET)


class TestCreate:
    def test_create_path(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, out, err = run_script(fake, *WITH_SECRETS)

        assert code == 0, err
        assert fake.calls() == [
            "GET /api/v2/actions/actions",
            "POST /api/v2/actions/actions",
            "GET /api/v2/actions/actions/act_1",
            "POST /api/v2/actions/actions/act_1/deploy",
            f"GET {BINDINGS_PATH}",
            f"PATCH {BINDINGS_PATH}",
        ]
        created = request_json(fake, "POST", "/api/v2/actions/actions")
        assert created["name"] == "hookledger-post-login"
        assert created["code"] == ACTION_CODE
        assert created["supported_triggers"] == [{"id": "post-login", "version": "v3"}]
        assert created["runtime"] == "node22"
        assert created["secrets"] == [
            {"name": "HOOKLEDGER_URL", "value": HOOK_URL},
            {"name": "HOOKLEDGER_SECRET", "value": HOOK_SECRET},
        ]
        assert fake.deployed == ["act_1"]
        assert [b["action"]["id"] for b in fake.bindings] == ["act_1"]

    def test_create_needs_secrets(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, _, err = run_script(fake)

        assert code == 1
        assert "required to create it" in err[0]
        assert fake.writes() == []

    def test_timeout_secret_and_runtime(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, _, err = run_script(
            fake, *WITH_SECRETS, "--timeout-ms", "2500", "--runtime", "node18"
        )

        assert code == 0, err
        created = request_json(fake, "POST", "/api/v2/actions/actions")
        assert created["runtime"] == "node18"
        assert {"name": "HOOKLEDGER_TIMEOUT_MS", "value": "2500"} in created["secrets"]

    def test_secret_from_environment(self) -> None:
        fake = FakeAuth0(FakeTime())
        out: list[str] = []

        code = deploy_script.run(
            ["--hookledger-url", HOOK_URL],
            transport=fake.transport(),
            sleep=fake.time.sleep,
            clock=fake.time.clock,
            out=out.append,
            err=out.append,
            environ={
                "AUTH0_DOMAIN": DOMAIN,
                "AUTH0_CLIENT_ID": "m2m-client",
                "AUTH0_CLIENT_SECRET": "m2m-secret",
                "HOOKLEDGER_AUTH0_SECRET": HOOK_SECRET,
            },
        )

        assert code == 0, out
        created = request_json(fake, "POST", "/api/v2/actions/actions")
        assert {"name": "HOOKLEDGER_SECRET", "value": HOOK_SECRET} in created["secrets"]


class TestUpdate:
    def test_update_path(self) -> None:
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION])

        code, _, err = run_script(fake)

        assert code == 0, err
        assert "POST /api/v2/actions/actions" not in fake.calls()
        patched = request_json(fake, "PATCH", "/api/v2/actions/actions/act_existing")
        assert patched["code"] == ACTION_CODE
        assert patched["runtime"] == "node22"
        assert patched["supported_triggers"] == [{"id": "post-login", "version": "v3"}]
        assert "secrets" not in patched
        assert "name" not in patched
        assert fake.deployed == ["act_existing"]

    def test_update_with_secrets(self) -> None:
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION])

        code, _, err = run_script(fake, *WITH_SECRETS)

        assert code == 0, err
        patched = request_json(fake, "PATCH", "/api/v2/actions/actions/act_existing")
        assert [item["name"] for item in patched["secrets"]] == [
            "HOOKLEDGER_URL",
            "HOOKLEDGER_SECRET",
        ]

    def test_url_without_secret_fails(self) -> None:
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION])

        code, _, err = run_script(fake, "--hookledger-url", HOOK_URL)

        assert code == 1
        assert "go together" in err[0]
        assert fake.requests == []

    def test_same_name_twice_fails(self) -> None:
        twin = {**EXISTING_ACTION, "id": "act_twin"}
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION, twin])

        code, _, err = run_script(fake)

        assert code == 1
        assert "act_existing" in err[0]
        assert "act_twin" in err[0]
        assert fake.writes() == []


class TestBuild:
    def test_waits_until_built(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(
            time, actions=[EXISTING_ACTION], build_statuses=["pending", "building", "built"]
        )

        code, _, err = run_script(fake, "--poll-interval", "3")

        assert code == 0, err
        polls = [c for c in fake.calls() if c == "GET /api/v2/actions/actions/act_existing"]
        assert len(polls) == 3
        assert time.sleeps == [3.0, 3.0]
        deploy_index = fake.calls().index("POST /api/v2/actions/actions/act_existing/deploy")
        assert deploy_index > fake.calls().index("GET /api/v2/actions/actions/act_existing")
        assert fake.deployed == ["act_existing"]

    def test_build_failed(self) -> None:
        fake = FakeAuth0(
            FakeTime(), actions=[EXISTING_ACTION], build_statuses=["building", "failed"]
        )

        code, _, err = run_script(fake)

        assert code == 1
        assert "build of Action act_existing failed" in err[0]
        assert fake.deployed == []
        assert f"PATCH {BINDINGS_PATH}" not in fake.calls()

    def test_build_deadline(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION], build_statuses=["building"])

        code, _, err = run_script(fake, "--build-timeout", "10", "--poll-interval", "3")

        assert code == 1
        assert "not built within 10 s" in err[0]
        assert "'building'" in err[0]
        assert fake.deployed == []
        assert sum(time.sleeps) == pytest.approx(10.0)
        assert len(time.sleeps) == 4

    def test_deploy_rejected_as_unbuilt_retries(self) -> None:
        """A deploy that Auth0 rejects because the draft is not built yet is tried again."""
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION])
        fake.deploy_rejections = 1

        code, _, err = run_script(fake)

        assert code == 0, err
        deploys = [c for c in fake.calls() if c.endswith("/deploy")]
        assert len(deploys) == 2
        assert fake.deployed == ["act_existing"]

    def test_other_deploy_error_fails(self) -> None:
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION])
        forbidden = httpx.Response(403, json={"message": "Insufficient scope"})
        fake.deploy = lambda action_id: forbidden  # type: ignore[method-assign]

        code, _, err = run_script(fake)

        assert code == 1
        assert "HTTP 403: Insufficient scope" in err[0]
        assert f"PATCH {BINDINGS_PATH}" not in fake.calls()


class TestRateLimit:
    def test_429_then_success(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION])
        fake.rate_limit(
            "GET", "/api/v2/actions/actions", {"x-ratelimit-reset": str(int(time.now) + 5)}
        )

        code, out, err = run_script(fake)

        assert code == 0, err
        finds = [c for c in fake.calls() if c == "GET /api/v2/actions/actions"]
        assert len(finds) == 2
        assert time.sleeps == [5.0]
        assert any("rate limited" in line for line in out)

    def test_429_without_reset_backs_off(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION])
        fake.rate_limit("PATCH", BINDINGS_PATH, {}, {})

        code, _, err = run_script(fake)

        assert code == 0, err
        assert time.sleeps == [1.0, 2.0]

    def test_429_past_reset_retries_at_once(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION])
        fake.rate_limit("GET", BINDINGS_PATH, {"x-ratelimit-reset": str(int(time.now) - 30)})

        code, _, err = run_script(fake)

        assert code == 0, err
        assert time.sleeps == [0.0]

    def test_429_retries_are_bounded(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION])
        reset = {"x-ratelimit-reset": str(int(time.now) + 1)}
        fake.rate_limit("GET", "/api/v2/actions/actions", *([reset] * 10))

        code, _, err = run_script(fake)

        assert code == 1
        assert "still rate limited (429) after 5 retries" in err[0]
        assert len(fake.requests) == 6
        assert fake.writes() == []

    def test_429_on_token_request(self) -> None:
        time = FakeTime()
        fake = FakeAuth0(time, actions=[EXISTING_ACTION])
        fake.rate_limit("POST", "/oauth/token", {"x-ratelimit-reset": str(int(time.now) + 2)})

        code, _, err = run_script(
            fake, credentials=("--client-id", "m2m-client", "--client-secret", "m2m-secret")
        )

        assert code == 0, err
        assert fake.calls()[:2] == ["POST /oauth/token", "POST /oauth/token"]
        assert time.sleeps == [2.0]


class TestBindings:
    def test_existing_bindings_kept_and_appended(self) -> None:
        existing = [
            binding("bind_a", "act_a", "Add roles"),
            binding("bind_b", "act_b", "Block countries"),
        ]
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION], bindings=existing)

        code, _, err = run_script(fake)

        assert code == 0, err
        sent = request_json(fake, "PATCH", BINDINGS_PATH)
        assert sent == {
            "bindings": [
                {"ref": {"type": "binding_id", "value": "bind_a"}, "display_name": "Add roles"},
                {
                    "ref": {"type": "binding_id", "value": "bind_b"},
                    "display_name": "Block countries",
                },
                {
                    "ref": {"type": "action_id", "value": "act_existing"},
                    "display_name": "hookledger-post-login",
                },
            ]
        }
        assert [b["id"] for b in fake.bindings] == ["bind_a", "bind_b", "bind_new_1"]

    def test_all_pages_of_bindings_kept(self) -> None:
        existing = [binding(f"bind_{i:02d}", f"act_{i:02d}", f"Action {i}") for i in range(25)]
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION], bindings=existing)

        code, _, err = run_script(fake)

        assert code == 0, err
        pages = [
            r.url.params["page"]
            for r in fake.requests
            if r.url.path == BINDINGS_PATH and r.method == "GET"
        ]
        assert pages == ["0", "1"]
        sent = request_json(fake, "PATCH", BINDINGS_PATH)["bindings"]
        assert [entry["ref"]["value"] for entry in sent[:-1]] == [
            f"bind_{i:02d}" for i in range(25)
        ]
        assert sent[-1]["ref"] == {"type": "action_id", "value": "act_existing"}

    def test_already_bound_not_duplicated(self) -> None:
        existing = [
            binding("bind_a", "act_a", "Add roles"),
            binding("bind_ours", "act_existing", "hookledger-post-login"),
        ]
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION], bindings=existing)

        code, out, err = run_script(fake)

        assert code == 0, err
        assert f"PATCH {BINDINGS_PATH}" not in fake.calls()
        assert [b["id"] for b in fake.bindings] == ["bind_a", "bind_ours"]
        assert any("already bound" in line for line in out)
        assert fake.deployed == ["act_existing"]


class TestDryRun:
    def test_dry_run_create_sends_no_writes(self) -> None:
        fake = FakeAuth0(FakeTime(), bindings=[binding("bind_a", "act_a", "Add roles")])

        code, out, err = run_script(
            fake,
            *WITH_SECRETS,
            "--dry-run",
            credentials=("--client-id", "m2m-client", "--client-secret", "m2m-secret"),
        )

        assert code == 0, err
        assert [c for c in fake.calls() if not c.startswith("GET ")] == ["POST /oauth/token"]
        assert fake.actions == {}
        assert fake.deployed == []
        planned = [line for line in out if line.startswith("dry run: would")]
        assert [line.split(" ")[3] for line in planned] == ["POST", "POST", "PATCH"]
        assert "/api/v2/actions/actions/<new action id>/deploy" in planned[1]
        assert '"binding_id"' in planned[2]
        assert '"action_name"' in planned[2]

    def test_dry_run_update_sends_no_writes(self) -> None:
        fake = FakeAuth0(FakeTime(), actions=[EXISTING_ACTION])

        code, out, err = run_script(fake, *WITH_SECRETS, "--dry-run")

        assert code == 0, err
        assert all(request.method == "GET" for request in fake.requests)
        assert fake.actions["act_existing"]["code"] == EXISTING_ACTION["code"]
        planned = [line for line in out if line.startswith("dry run: would")]
        assert planned[0].startswith(
            f"dry run: would PATCH https://{DOMAIN}/api/v2/actions/actions/act_existing"
        )
        assert planned[1].endswith("/api/v2/actions/actions/act_existing/deploy")

    def test_dry_run_hides_secrets_and_code(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, out, _ = run_script(fake, *WITH_SECRETS, "--dry-run")

        assert code == 0
        text = "\n".join(out)
        assert HOOK_SECRET not in text
        assert "<hidden>" in text
        assert "onExecutePostLogin" not in text
        assert f"<{len(ACTION_CODE.encode())} bytes>" in text


class TestArguments:
    def test_missing_domain(self) -> None:
        errors: list[str] = []

        code = deploy_script.run(
            ["--token", TOKEN], out=errors.append, err=errors.append, environ={}
        )

        assert code == 1
        assert "Missing tenant domain" in errors[0]

    def test_missing_credentials(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, _, err = run_script(fake, credentials=())

        assert code == 1
        assert "Missing credentials" in err[0]
        assert fake.requests == []

    def test_wrong_client_secret(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, _, err = run_script(
            fake, credentials=("--client-id", "m2m-client", "--client-secret", "wrong")
        )

        assert code == 1
        assert "POST /oauth/token failed with HTTP 401" in err[0]

    def test_domain_given_as_url(self) -> None:
        assert deploy_script.normalize_domain(f"https://{DOMAIN}/") == DOMAIN
        assert deploy_script.normalize_domain(DOMAIN) == DOMAIN

    def test_domain_with_path_rejected(self) -> None:
        with pytest.raises(deploy_script.DeployError):
            deploy_script.normalize_domain("example.test/api")

    def test_timeout_out_of_range(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, _, err = run_script(fake, *WITH_SECRETS, "--timeout-ms", "50")

        assert code == 1
        assert "outside 100..10000" in err[0]

    def test_url_must_be_http(self) -> None:
        fake = FakeAuth0(FakeTime())

        code, _, err = run_script(
            fake, "--hookledger-url", "ftp://x/y", "--hookledger-secret", HOOK_SECRET
        )

        assert code == 1
        assert "not an http(s) URL" in err[0]
