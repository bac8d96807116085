"""The demo's calls to the service's admin API: metric series and reconciliation runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

RUN_DONE = frozenset({"succeeded", "failed"})


class DemoApiError(RuntimeError):
    """An admin call returned an error status, or a run did not finish in time."""


def iso(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AdminClient:
    """A small client for `GET /v1/metrics/{name}` and `/v1/reconciliations` with a bearer token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=timeout
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _checked(self, response: httpx.Response, action: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise DemoApiError(
                f"{action} failed with HTTP {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def metric_series(self, name: str, start: datetime, end: datetime, interval: str = "day") -> dict[str, Any]:
        """Return the series of metric `name` over [start, end)."""
        response = self._client.get(
            f"/v1/metrics/{name}", params={"start": iso(start), "end": iso(end), "interval": interval}
        )
        return self._checked(response, f"GET /v1/metrics/{name}")

    def start_reconciliation(self, source: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Start a run for `source` over [start, end) and return the run as the service describes it."""
        response = self._client.post(
            "/v1/reconciliations", json={"source": source, "start": iso(start), "end": iso(end)}
        )
        return self._checked(response, "POST /v1/reconciliations")

    def get_reconciliation(self, run_id: int | str) -> dict[str, Any]:
        response = self._client.get(f"/v1/reconciliations/{run_id}")
        return self._checked(response, f"GET /v1/reconciliations/{run_id}")

    def wait_for_run(self, run: dict[str, Any], *, timeout: float = 300.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll the run until it succeeded or failed; raise DemoApiError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while run.get("status") not in RUN_DONE:
            if time.monotonic() > deadline:
                raise DemoApiError(f"reconciliation run {run.get('id')} did not finish within {timeout:.0f} s")
            time.sleep(poll)
            run = self.get_reconciliation(run["id"])
        return run
