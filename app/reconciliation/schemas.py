"""Request and response bodies of the reconciliation routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

RunStatusName = Literal["running", "succeeded", "failed"]
# Run ids are BIGINT (signed 64-bit) on PostgreSQL and INTEGER on SQLite; larger ids cannot exist.
MAX_RUN_ID = 2**63 - 1


class TriggerRequest(BaseModel):
    """Start a run of one source; without start and end, over its last settled window."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=64, examples=["auth0"])
    start: AwareDatetime | None = Field(default=None, description="Window start, UTC, aligned to the window size.")
    end: AwareDatetime | None = Field(default=None, description="Window end, UTC, aligned to the window size.")


class RunOut(BaseModel):
    """One reconciliation run of a source over the half-open window [window_start, window_end)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    window_start: datetime
    window_end: datetime
    status: RunStatusName
    engine: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    rows_scanned: int
    gaps_filled: int
    rows_retracted: int
    pushes_without_log: int
    query_id: str | None
    bytes_scanned: int | None
    error: str | None


class RunList(BaseModel):
    """Runs, newest first."""

    runs: list[RunOut]
