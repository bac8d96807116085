"""Deploy the hookledger post-login Action to an Auth0 tenant through the Management API.

Steps, in order:

1. Get a Management API token by client credentials, unless `--token` is given.
2. Find the Action by name; create it, or update its code, runtime and secrets.
3. Poll the Action until its build status is `built` (fails on `failed` or
   when `--build-timeout` runs out), then deploy it.
4. Read the post-login trigger bindings and write them back with the Action
   appended, unless it is already bound. The bindings list is the whole
   ordered Login flow, so every existing binding is sent back, in its order,
   by its binding id.

`--dry-run` sends the reads (token, Action lookup, bindings) and prints each
write it would send instead of sending it. A 429 response is retried after
the `X-RateLimit-Reset` time (unix seconds), a bounded number of times.

The machine-to-machine application needs the scopes `read:actions`,
`create:actions` and `update:actions`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CODE_PATH = ROOT / "hooks_js" / "post-login.js"
DEFAULT_ACTION_NAME = "hookledger-post-login"
DEFAULT_RUNTIME = "node22"
TRIGGER_ID = "post-login"
TRIGGER_VERSION = "v3"
ACTIONS_PATH = "/api/v2/actions/actions"
BINDINGS_PATH = f"/api/v2/actions/triggers/{TRIGGER_ID}/bindings"
# The bindings endpoint pages its results, 20 per page by default.
BINDINGS_PAGE_SIZE = 20
# Auth0 rejects the deploy of a draft whose build has not finished with 400 and this text.
NOT_BUILT_MESSAGE = "built"

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Output = Callable[[str], None]


class DeployError(Exception):
    """A deployment step failed. The message names the step and the next thing to try."""


@dataclass(frozen=True)
class DeployConfig:
    """The Action to deploy and the build wait settings."""

    action_name: str
    code: str
    runtime: str = DEFAULT_RUNTIME
    # None leaves the secrets of an existing Action as they are.
    secrets: list[dict[str, str]] | None = None
    build_timeout_seconds: float = 120.0
    poll_interval_seconds: float = 2.0
    dry_run: bool = False


@dataclass
class DeployResult:
    """The outcome of a run, or in a dry run the planned writes."""

    action_id: str | None
    created: bool
    deployed: bool
    bound: bool
    already_bound: bool
    planned: list[str] = field(default_factory=list)


class ManagementClient:
    """A small Auth0 Management API client with 429 handling and a dry-run switch.

    `transport`, `sleep` and `clock` replace the network and time in tests.
    In a dry run, `send` refuses writes, so callers print a plan instead.
    """

    def __init__(
        self,
        domain: str,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        max_rate_limit_retries: int = 5,
        max_rate_limit_wait_seconds: float = 60.0,
        timeout_seconds: float = 30.0,
        dry_run: bool = False,
        out: Output = print,
    ) -> None:
        self.base_url = f"https://{domain}"
        self.domain = domain
        self._http = httpx.Client(
            base_url=self.base_url, transport=transport, timeout=timeout_seconds
        )
        self._sleep = sleep
        self._clock = clock
        self._max_retries = max_rate_limit_retries
        self._max_wait = max_rate_limit_wait_seconds
        self._token: str | None = None
        self.dry_run = dry_run
        self._out = out

    def close(self) -> None:
        self._http.close()

    def use_token(self, token: str) -> None:
        self._token = token

    def fetch_token(self, client_id: str, client_secret: str, audience: str | None = None) -> None:
        """Get a Management API access token by the client-credentials grant."""
        payload = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": audience or f"{self.base_url}/api/v2/",
        }
        # Getting a token changes nothing in the tenant, so a dry run sends it too.
        body = self._send("POST", "/oauth/token", json_body=payload, authorized=False)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise DeployError(
                "The token response from /oauth/token has no access_token; check the client "
                "id, the client secret and that the application may call the Management API."
            )
        self._token = token

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=params)

    def send(self, method: str, path: str, *, json_body: Any = None) -> Any:
        """Send a write request. A dry run plans writes instead, so here it is a bug."""
        if self.dry_run:
            raise AssertionError(f"dry run must not send {method} {path}")
        return self._send(method, path, json_body=json_body)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        authorized: bool = True,
    ) -> Any:
        headers = {"accept": "application/json"}
        if authorized:
            if self._token is None:
                raise DeployError("No Management API token: pass --token or client credentials.")
            headers["authorization"] = f"Bearer {self._token}"

        for retry in range(self._max_retries + 1):
            try:
                response = self._http.request(
                    method, path, params=params, json=json_body, headers=headers
                )
            except httpx.HTTPError as exc:
                raise DeployError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc
            if response.status_code != 429:
                return self._decode(method, path, response)
            if retry == self._max_retries:
                break
            wait = self._rate_limit_wait(response, retry)
            self._out(f"rate limited on {method} {path}; retrying in {wait:.1f} s")
            self._sleep(wait)
        raise DeployError(
            f"{method} {path} was still rate limited (429) after {self._max_retries} retries; "
            "try again later."
        )

    def _rate_limit_wait(self, response: httpx.Response, retry: int) -> float:
        """Return the seconds until X-RateLimit-Reset, or a growing fallback without the header."""
        reset = response.headers.get("x-ratelimit-reset")
        try:
            wait = float(reset) - self._clock() if reset is not None else 2.0**retry
        except ValueError:
            wait = 2.0**retry
        return min(max(wait, 0.0), self._max_wait)

    @staticmethod
    def _decode(method: str, path: str, response: httpx.Response) -> Any:
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise DeployError(
                    f"{method} {path} returned {response.status_code} with a body that is not JSON."
                ) from exc
        raise ManagementApiError(method, path, response)


class ManagementApiError(DeployError):
    """The Management API returned an error status."""

    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.message = _error_message(response)
        super().__init__(f"{method} {path} failed with HTTP {response.status_code}: {self.message}")


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "(empty body)"
    if isinstance(body, dict):
        for key in ("message", "error_description", "error"):
            if isinstance(body.get(key), str):
                return body[key]
    return json.dumps(body)[:200]


def find_action(client: ManagementClient, name: str) -> dict[str, Any] | None:
    """Return the Action named `name`, or None."""
    body = client.get(ACTIONS_PATH, params={"actionName": name})
    actions = body.get("actions", []) if isinstance(body, dict) else []
    matches = [action for action in actions if action.get("name") == name]
    if len(matches) > 1:
        ids = ", ".join(str(action.get("id")) for action in matches)
        raise DeployError(
            f"Found {len(matches)} Actions named {name!r} ({ids}); rename or delete all but one."
        )
    return matches[0] if matches else None


def list_bindings(client: ManagementClient) -> list[dict[str, Any]]:
    """Return every post-login binding in execution order, across all pages."""
    bindings: list[dict[str, Any]] = []
    page = 0
    while True:
        body = client.get(BINDINGS_PATH, params={"page": page, "per_page": BINDINGS_PAGE_SIZE})
        batch = body.get("bindings", []) if isinstance(body, dict) else []
        bindings.extend(batch)
        total = body.get("total") if isinstance(body, dict) else None
        if not batch or not isinstance(total, int) or len(bindings) >= total:
            return bindings
        page += 1


def action_payload(config: DeployConfig, *, include_name: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if include_name:
        payload["name"] = config.action_name
    payload["supported_triggers"] = [{"id": TRIGGER_ID, "version": TRIGGER_VERSION}]
    payload["code"] = config.code
    payload["runtime"] = config.runtime
    if config.secrets is not None:
        payload["secrets"] = config.secrets
    return payload


def redact(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return `payload` for printing: secret values hidden, code shortened to its size."""
    printable = dict(payload)
    if "code" in printable:
        printable["code"] = f"<{len(str(printable['code']).encode())} bytes>"
    if "secrets" in printable:
        printable["secrets"] = [
            {"name": item["name"], "value": "<hidden>"} for item in printable["secrets"]
        ]
    return printable


def wait_until_built(
    client: ManagementClient,
    action_id: str,
    *,
    deadline: float,
    config: DeployConfig,
    clock: Clock,
    sleep: Sleep,
) -> None:
    """Poll the Action until its status is `built`; raise on `failed` or at the deadline."""
    path = f"{ACTIONS_PATH}/{action_id}"
    while True:
        action = client.get(path)
        status = action.get("status") if isinstance(action, dict) else None
        if status == "built":
            return
        if status == "failed":
            raise DeployError(
                f"The build of Action {action_id} failed; open the Action in the Auth0 dashboard "
                "to see the build error, fix the code and run this script again."
            )
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeployError(
                f"Action {action_id} was not built within {config.build_timeout_seconds:g} s "
                f"(last status {status!r}); run the script again or raise --build-timeout."
            )
        sleep(min(config.poll_interval_seconds, remaining))


def deploy_when_built(
    client: ManagementClient, action_id: str, *, config: DeployConfig, clock: Clock, sleep: Sleep
) -> None:
    """Wait for the build, then deploy; a deploy that Auth0 rejects as not yet built waits again."""
    deadline = clock() + config.build_timeout_seconds
    while True:
        wait_until_built(
            client, action_id, deadline=deadline, config=config, clock=clock, sleep=sleep
        )
        try:
            client.send("POST", f"{ACTIONS_PATH}/{action_id}/deploy")
            return
        except ManagementApiError as exc:
            if exc.status_code != 400 or NOT_BUILT_MESSAGE not in exc.message:
                raise
            if clock() >= deadline:
                raise DeployError(
                    f"Action {action_id} was not deployable within "
                    f"{config.build_timeout_seconds:g} s: {exc.message}"
                ) from exc
            sleep(config.poll_interval_seconds)


def binding_refs(
    bindings: Sequence[Mapping[str, Any]], new_ref: Mapping[str, str], display_name: str
) -> list[dict[str, Any]]:
    """Return the PATCH entries: existing bindings by binding id, in order, then the new one."""
    entries: list[dict[str, Any]] = []
    for binding in bindings:
        entry: dict[str, Any] = {"ref": {"type": "binding_id", "value": binding["id"]}}
        if binding.get("display_name"):
            entry["display_name"] = binding["display_name"]
        entries.append(entry)
    entries.append({"ref": dict(new_ref), "display_name": display_name})
    return entries


def is_bound(bindings: Sequence[Mapping[str, Any]], action_id: str | None) -> bool:
    if action_id is None:
        return False
    return any((binding.get("action") or {}).get("id") == action_id for binding in bindings)


def deploy(
    client: ManagementClient,
    config: DeployConfig,
    *,
    clock: Clock = time.time,
    sleep: Sleep = time.sleep,
    out: Output = print,
) -> DeployResult:
    """Create or update, build, deploy and bind the Action. A dry run prints the writes."""
    result = DeployResult(
        action_id=None, created=False, deployed=False, bound=False, already_bound=False
    )

    def plan(method: str, path: str, body: Any = None) -> None:
        line = f"dry run: would {method} {client.base_url}{path}"
        if body is not None:
            line += " " + json.dumps(body, sort_keys=True)
        result.planned.append(line)
        out(line)

    existing = find_action(client, config.action_name)
    if existing is None:
        if config.secrets is None:
            raise DeployError(
                f"Action {config.action_name!r} does not exist yet, so --hookledger-url and "
                "--hookledger-secret are required to create it."
            )
        payload = action_payload(config, include_name=True)
        if config.dry_run:
            plan("POST", ACTIONS_PATH, redact(payload))
        else:
            created = client.send("POST", ACTIONS_PATH, json_body=payload)
            result.action_id = created["id"]
            result.created = True
            out(f"created Action {config.action_name!r} ({result.action_id})")
    else:
        result.action_id = existing["id"]
        path = f"{ACTIONS_PATH}/{result.action_id}"
        payload = action_payload(config, include_name=False)
        if config.dry_run:
            plan("PATCH", path, redact(payload))
        else:
            client.send("PATCH", path, json_body=payload)
            out(f"updated Action {config.action_name!r} ({result.action_id})")

    if config.dry_run:
        plan("POST", f"{ACTIONS_PATH}/{result.action_id or '<new action id>'}/deploy")
    else:
        assert result.action_id is not None
        out(f"waiting up to {config.build_timeout_seconds:g} s for the build")
        deploy_when_built(client, result.action_id, config=config, clock=clock, sleep=sleep)
        result.deployed = True
        out(f"deployed Action {result.action_id}")

    bindings = list_bindings(client)
    if is_bound(bindings, result.action_id):
        result.already_bound = True
        out(
            f"Action {result.action_id} is already bound to {TRIGGER_ID}; bindings left as they are"
        )
        return result

    if result.action_id is None:
        new_ref = {"type": "action_name", "value": config.action_name}
    else:
        new_ref = {"type": "action_id", "value": result.action_id}
    body = {"bindings": binding_refs(bindings, new_ref, config.action_name)}
    if config.dry_run:
        plan("PATCH", BINDINGS_PATH, body)
    else:
        client.send("PATCH", BINDINGS_PATH, json_body=body)
        result.bound = True
        out(
            f"bound Action {result.action_id} to {TRIGGER_ID} "
            f"after {len(bindings)} existing binding(s)"
        )
    return result


def build_secrets(
    url: str | None, secret: str | None, timeout_ms: int | None
) -> list[dict[str, str]] | None:
    """Return the Action's secrets list, or None when none were given."""
    if url is None and secret is None and timeout_ms is None:
        return None
    if url is None or secret is None:
        raise DeployError(
            "--hookledger-url and --hookledger-secret (or HOOKLEDGER_AUTH0_SECRET) go together, "
            "and --timeout-ms needs both, because the script sends the Action's whole secrets "
            "list; give both, or none of the three to keep the current secrets."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DeployError(
            f"--hookledger-url {url!r} is not an http(s) URL; give the full push URL."
        )
    if not secret.strip().removeprefix("whsec_"):
        raise DeployError("--hookledger-secret is empty; give the source's whsec_ secret.")
    secrets = [
        {"name": "HOOKLEDGER_URL", "value": url},
        {"name": "HOOKLEDGER_SECRET", "value": secret},
    ]
    if timeout_ms is not None:
        secrets.append({"name": "HOOKLEDGER_TIMEOUT_MS", "value": str(timeout_ms)})
    return secrets


def normalize_domain(value: str) -> str:
    """Return the tenant host name, given `example.us.auth0.com` or `https://…/`."""
    text = value.strip()
    host = urlsplit(text).netloc if "://" in text else text
    host = host.rstrip("/")
    if not host or "/" in host:
        raise DeployError(f"--domain {value!r} is not a host name such as example.us.auth0.com.")
    return host


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Create or update, deploy and bind the hookledger post-login Action.",
    )
    parser.add_argument(
        "--domain",
        default=environ.get("AUTH0_DOMAIN"),
        help="tenant domain, e.g. example.us.auth0.com (env AUTH0_DOMAIN)",
    )
    parser.add_argument(
        "--client-id",
        default=environ.get("AUTH0_CLIENT_ID"),
        help="machine-to-machine client id (env AUTH0_CLIENT_ID)",
    )
    parser.add_argument(
        "--client-secret",
        default=environ.get("AUTH0_CLIENT_SECRET"),
        help="machine-to-machine client secret (env AUTH0_CLIENT_SECRET)",
    )
    parser.add_argument(
        "--audience", default=None, help="Management API audience; default https://DOMAIN/api/v2/"
    )
    parser.add_argument(
        "--token",
        default=environ.get("AUTH0_MANAGEMENT_TOKEN"),
        help="Management API token instead of client credentials (env AUTH0_MANAGEMENT_TOKEN)",
    )
    parser.add_argument(
        "--name", default=DEFAULT_ACTION_NAME, help=f"Action name (default {DEFAULT_ACTION_NAME})"
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=DEFAULT_CODE_PATH,
        help="Action source file (default hooks_js/post-login.js)",
    )
    parser.add_argument(
        "--runtime", default=DEFAULT_RUNTIME, help=f"Actions runtime (default {DEFAULT_RUNTIME})"
    )
    parser.add_argument(
        "--hookledger-url",
        default=None,
        help="secret HOOKLEDGER_URL: the full push URL, "
        "e.g. https://ledger.example.com/v1/hooks/auth0",
    )
    parser.add_argument(
        "--hookledger-secret",
        default=None,
        help="secret HOOKLEDGER_SECRET: the source's whsec_ secret; with "
        "--hookledger-url and no flag, env HOOKLEDGER_AUTH0_SECRET",
    )
    parser.add_argument(
        "--timeout-ms",
        type=int,
        default=None,
        help="secret HOOKLEDGER_TIMEOUT_MS: push time budget in milliseconds (100 to 10000)",
    )
    parser.add_argument(
        "--build-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the Action build (default 120)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        help="seconds between build status checks (default 2)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="send only reads and print the writes that would be sent",
    )
    return parser.parse_args(argv)


def run(
    argv: Sequence[str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    out: Output = print,
    err: Output = lambda line: print(line, file=sys.stderr),
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the deployment and return the process exit code."""
    env = os.environ if environ is None else environ
    args = parse_args(argv, env)
    try:
        if not args.domain:
            raise DeployError("Missing tenant domain: pass --domain or set AUTH0_DOMAIN.")
        if not args.token and not (args.client_id and args.client_secret):
            raise DeployError(
                "Missing credentials: pass --token, or --client-id and --client-secret "
                "(or AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET)."
            )
        if args.timeout_ms is not None and not 100 <= args.timeout_ms <= 10000:
            raise DeployError(f"--timeout-ms {args.timeout_ms} is outside 100..10000.")
        try:
            code = args.code.read_text(encoding="utf-8")
        except OSError as exc:
            raise DeployError(
                f"Cannot read the Action code at {args.code}: {exc.strerror}."
            ) from exc
        hookledger_secret = args.hookledger_secret
        if hookledger_secret is None and args.hookledger_url is not None:
            hookledger_secret = env.get("HOOKLEDGER_AUTH0_SECRET")
        config = DeployConfig(
            action_name=args.name,
            code=code,
            runtime=args.runtime,
            secrets=build_secrets(args.hookledger_url, hookledger_secret, args.timeout_ms),
            build_timeout_seconds=args.build_timeout,
            poll_interval_seconds=args.poll_interval,
            dry_run=args.dry_run,
        )
        client = ManagementClient(
            normalize_domain(args.domain),
            transport=transport,
            sleep=sleep,
            clock=clock,
            dry_run=args.dry_run,
            out=out,
        )
        try:
            if args.token:
                client.use_token(args.token)
            else:
                client.fetch_token(args.client_id, args.client_secret, args.audience)
            deploy(client, config, clock=clock, sleep=sleep, out=out)
        finally:
            client.close()
    except DeployError as exc:
        err(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
