"""Push every simulated login to the service as the Auth0 post-login Action would.

Two pushers produce the same `PushOutcome`s:

- `NodeActionPusher` runs the real `hooks_js/post-login.js` under Node, many
  executions in one process (`action_driver.js`), and reads the one line the
  Action logs per execution.
- `PythonActionPusher` signs with the Python port in `app.demo.action` and
  sends with httpx. It is the fallback when Node is not on PATH, and its
  delivery (one retry on a network error, 429 or 5xx inside one time budget)
  imitates the Action's.

Each login's fate comes from the generator. A delivered push goes to the
service. A push lost because the service was down goes to a closed port, so
the connection is refused and the one retry fails too. A push lost to a
timeout goes to a listener that accepts connections and never responds, with a
short budget, so the budget runs out.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from app.demo import action
from app.demo.traffic import Login

DRIVER = Path(__file__).with_name("action_driver.js")
# In a source checkout the Action sits beside the package; an installed wheel does not ship it.
ACTION_JS = Path(__file__).resolve().parents[2] / "hooks_js" / "post-login.js"

# The Action's budget for pushes that should arrive, and for those that are lost to a timeout.
DELIVERED_BUDGET_MS = 10_000
TIMEOUT_BUDGET_MS = 250
RETRY_DELAY_S = 0.1
MIN_ATTEMPT_S = 0.1

ACTION_LINE = re.compile(r"^hookledger push (?P<verdict>sent|failed|skipped): (?P<rest>.*)$")
LINE_FIELD = re.compile(r"(?P<key>[a-z_]+)=(?P<value>\S+)")


@dataclass(frozen=True)
class PushOutcome:
    """The outcome of one Action execution, parsed from the log line it wrote.

    `delivered` is True when the service returned 2xx; `result` is the
    service's `status` member then (`accepted` or `duplicate`). `problem`
    describes a failed push (`status=503`, `timed_out`, `network_error=...`).
    """

    index: int
    delivered: bool
    webhook_id: str | None
    result: str | None
    problem: str | None
    attempts: int
    line: str
    api_calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class PushTargets:
    """The push targets: the service, a closed port and a listener that never responds."""

    service_url: str
    refused_url: str
    hanging_url: str

    def for_login(self, login: Login) -> tuple[str, int]:
        """Return the push URL and the Action's time budget in ms for `login`'s fate."""
        if login.lost == "service_down":
            return self.refused_url, DELIVERED_BUDGET_MS
        if login.lost == "timeout":
            return self.hanging_url, TIMEOUT_BUDGET_MS
        return self.service_url, DELIVERED_BUDGET_MS


class Pusher(Protocol):
    label: str

    def push(self, logins: Sequence[Login], targets: PushTargets, secret: str) -> list[PushOutcome]:
        """Run the Action once per login, in order, and return one outcome per login."""
        ...


def parse_action_line(index: int, line: str, api_calls: Sequence[str] = ()) -> PushOutcome:
    """Parse the Action's `hookledger push sent|failed|skipped: ...` line."""
    match = ACTION_LINE.match(line)
    if match is None:
        return PushOutcome(index, False, None, None, f"unexpected log line {line[:80]!r}", 0, line, tuple(api_calls))
    fields = {item.group("key"): item.group("value") for item in LINE_FIELD.finditer(match.group("rest"))}
    delivered = match.group("verdict") == "sent"
    problem = None
    if not delivered:
        # Everything after `attempts=N` up to `budget_ms=` describes the failure.
        problem = re.sub(r"^.*?attempts=\d+\s*|\s*budget_ms=\d+$", "", match.group("rest")) or match.group("rest")
    return PushOutcome(
        index=index,
        delivered=delivered,
        webhook_id=fields.get("id"),
        result=fields.get("result") if delivered else None,
        problem=problem,
        attempts=int(fields.get("attempts", "0")),
        line=line,
        api_calls=tuple(api_calls),
    )


def action_secrets(url: str, secret: str, budget_ms: int) -> dict[str, str]:
    """Return the Action's `event.secrets` for one execution."""
    return {"HOOKLEDGER_URL": url, "HOOKLEDGER_SECRET": secret, "HOOKLEDGER_TIMEOUT_MS": str(budget_ms)}


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@contextmanager
def lost_push_targets(service_url: str) -> Iterator[PushTargets]:
    """Yield targets with a refused port and a silent listener on 127.0.0.1; close them on exit."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused_port = probe.getsockname()[1]
    # Connections complete in the kernel's backlog and are never accepted, so requests get no response.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    hanging_port = listener.getsockname()[1]
    try:
        yield PushTargets(
            service_url=service_url,
            refused_url=f"http://127.0.0.1:{refused_port}/v1/hooks/auth0",
            hanging_url=f"http://127.0.0.1:{hanging_port}/v1/hooks/auth0",
        )
    finally:
        listener.close()


def find_node() -> str | None:
    """Return the `node` executable on PATH, or None."""
    return shutil.which("node")


class ActionDriverError(RuntimeError):
    """The Node driver exited early or wrote something that is not a result line."""


@dataclass
class NodeActionPusher:
    """Runs `post-login.js` under Node through `action_driver.js`."""

    node: str
    action_path: Path = ACTION_JS
    concurrency: int = 16
    warm_up_url: str | None = None
    label: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.label = f"hooks_js/post-login.js under Node ({self.node_version()})"

    def node_version(self) -> str:
        completed = subprocess.run([self.node, "--version"], capture_output=True, text=True, timeout=30)
        return completed.stdout.strip() or "unknown version"

    def push(self, logins: Sequence[Login], targets: PushTargets, secret: str) -> list[PushOutcome]:
        command = [self.node, str(DRIVER), str(self.action_path), str(self.concurrency)]
        if self.warm_up_url:
            command.append(self.warm_up_url)
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        writer = threading.Thread(target=self._write_events, args=(process.stdin, logins, targets, secret))
        writer.start()
        outcomes: dict[int, PushOutcome] = {}
        for text in process.stdout:
            result = json.loads(text)
            lines = result["lines"]
            line = lines[-1] if lines else "(the Action logged nothing)"
            outcomes[result["index"]] = parse_action_line(result["index"], line, result["api_calls"])
        writer.join()
        errors = process.stderr.read()
        status = process.wait()
        if status != 0 or len(outcomes) != len(logins):
            raise ActionDriverError(
                f"the Node Action driver exited with status {status} after {len(outcomes)} of "
                f"{len(logins)} executions: {errors.strip()[-2000:]}"
            )
        return [outcomes[index] for index in range(len(logins))]

    @staticmethod
    def _write_events(stream: Any, logins: Sequence[Login], targets: PushTargets, secret: str) -> None:
        try:
            for index, login in enumerate(logins):
                url, budget = targets.for_login(login)
                event = {**login.event, "secrets": action_secrets(url, secret, budget)}
                item = {"index": index, "now_ms": epoch_ms(login.occurred_at), "event": event}
                stream.write(json.dumps(item, separators=(",", ":")) + "\n")
        except BrokenPipeError:
            # The driver died; push() reports its exit status and stderr.
            pass
        finally:
            try:
                stream.close()
            except BrokenPipeError:
                pass


@dataclass
class PythonActionPusher:
    """Signs with `app.demo.action` and delivers with httpx, imitating the Action's budget and retry."""

    concurrency: int = 16
    label: str = "Python port app/demo/action.py (Node.js not found on PATH)"
    clock: Callable[[], float] = time.monotonic

    def push(self, logins: Sequence[Login], targets: PushTargets, secret: str) -> list[PushOutcome]:
        return asyncio.run(self._push_all(logins, targets, secret))

    async def _push_all(self, logins: Sequence[Login], targets: PushTargets, secret: str) -> list[PushOutcome]:
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient() as client:

            async def one(index: int, login: Login) -> PushOutcome:
                async with limit:
                    return await self._push_one(client, index, login, targets, secret)

            return list(await asyncio.gather(*(one(index, login) for index, login in enumerate(logins))))

    async def _push_one(
        self, client: httpx.AsyncClient, index: int, login: Login, targets: PushTargets, secret: str
    ) -> PushOutcome:
        url, budget_ms = targets.for_login(login)
        started = self.clock()
        deadline = started + budget_ms / 1000
        now_ms = epoch_ms(login.occurred_at)
        body = action.serialize_login_event(action.build_login_event(login.event, now=now_ms))
        webhook_id = action.derive_webhook_id(login.event)
        kind = action.classify_kind(login.event)
        problem = ""
        attempts = 0
        while attempts < 2:
            attempts += 1
            elapsed_ms = int((self.clock() - started) * 1000)
            timestamp = (now_ms + elapsed_ms) // 1000
            headers = {
                "content-type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": action.sign_delivery(
                    secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body
                ),
            }
            remaining = deadline - self.clock()
            try:
                response = await client.post(url, content=body, headers=headers, timeout=max(remaining, 0.001))
            except httpx.TimeoutException:
                problem = "timed_out"
                break
            except httpx.TransportError as exc:
                problem = f"network_error={type(exc).__name__}"
            else:
                summary = f"id={webhook_id} kind={kind} attempts={attempts}"
                if 200 <= response.status_code < 300:
                    result = _status_member(response)
                    return parse_action_line(index, f"hookledger push sent: {summary} status={response.status_code} result={result}")
                problem = f"status={response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break
            if deadline - self.clock() - RETRY_DELAY_S < MIN_ATTEMPT_S:
                problem += " no_budget_for_retry"
                break
            await asyncio.sleep(RETRY_DELAY_S)
        line = f"hookledger push failed: id={webhook_id} kind={kind} attempts={attempts} {problem} budget_ms={budget_ms}"
        return parse_action_line(index, line)


def _status_member(response: httpx.Response) -> str | None:
    try:
        status = response.json().get("status")
    except (ValueError, AttributeError):
        return None
    return status[:32] if isinstance(status, str) else None
