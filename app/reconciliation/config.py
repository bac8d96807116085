"""The `[sources.NAME.reconciliation]` tables, validated at startup.

Example::

    [sources.auth0.reconciliation]
    mapping = "auth0"            # a built-in or [log_mappings.NAME] mapping
    strategy = "match"           # or "key"; default: the mapping's
    window = "1d"                # "1h" or "1d"
    settle_lag = "1h"            # a window is reconciled once it ended this long ago
    lag_margin = "1h"            # arrival partitions scanned past the window's end
    tolerance_seconds = 120
    local_root = "logs/auth0"    # DuckDB: directory of dt=YYYY-MM-DD/ partitions

    [sources.auth0.reconciliation.hint_pointers]
    transaction_id = "/data/transaction_id"

Durations are written as a number followed by `s`, `m`, `h` or `d`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.config import AppConfig, ConfigError
from app.ingest.pointer import parse_pointer
from app.reconciliation.mappings import LogMapping, parse_log_mappings

# Upper bound of settle_lag and lag_margin: Auth0 keeps tenant logs at most 30 days.
MAX_LAG = timedelta(days=30)
WINDOWS: dict[str, timedelta] = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str | int) -> timedelta:
    """Parse `90s`, `15m`, `1h` or `2d` (an integer means seconds); raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write a number followed by s, m, h or d, such as 1h")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative; durations must be zero or more")
        return timedelta(seconds=value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write a number followed by s, m, h or d, such as 1h")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class HintPointers(BaseModel):
    """JSON pointers into a pushed payload for the ids that help pairing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: str | None = "/data/transaction_id"
    session_id: str | None = "/data/session_id"
    client_id: str | None = "/data/client_id"

    @field_validator("transaction_id", "session_id", "client_id")
    @classmethod
    def _check_pointer(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parse_pointer(value)
        return value


class _ReconciliationTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mapping: str | None = None
    strategy: Literal["match", "key"] | None = None
    engine: Literal["duckdb", "athena"] | None = None
    window: Literal["1h", "1d"] = "1d"
    settle_lag: str | int = "1h"
    lag_margin: str | int = "1h"
    tolerance_seconds: float = Field(default=120, gt=0, le=86_400)
    transaction_tolerance_seconds: float = Field(default=1800, gt=0, le=86_400)
    trust_transaction_id: bool = True
    hint_pointers: HintPointers = Field(default_factory=HintPointers)
    local_root: str | None = None

    @field_validator("settle_lag", "lag_margin")
    @classmethod
    def _check_duration(cls, value: str | int) -> str | int:
        if parse_duration(value) > MAX_LAG:
            raise ValueError(f"{value!r} is longer than {MAX_LAG.days} days; logs that late are outside any retention")
        return value


@dataclass(frozen=True)
class SourceReconciliation:
    """Reconciliation settings of one source: its log mapping, strategy, window and matching bounds."""

    source: str
    mapping: LogMapping
    strategy: Literal["match", "key"]
    window: timedelta
    settle_lag: timedelta
    lag_margin: timedelta
    tolerance: timedelta
    transaction_tolerance: timedelta
    trust_transaction_id: bool
    hint_pointers: HintPointers

    @property
    def window_name(self) -> str:
        return next(name for name, size in WINDOWS.items() if size == self.window)


@dataclass(frozen=True)
class ReconciliationConfig:
    """Reconciliation settings of every source that has a reconciliation table."""

    sources: Mapping[str, SourceReconciliation]
    mappings: Mapping[str, LogMapping]


def parse_reconciliation_config(config: AppConfig) -> ReconciliationConfig:
    """Validate every source's reconciliation table; raise ConfigError naming the source and key."""
    base_dir = config.path.parent if config.path is not None else None
    raw_mappings = config.raw.get("log_mappings", {})
    if not isinstance(raw_mappings, Mapping):
        raise ConfigError("[log_mappings] must be a table of [log_mappings.NAME] tables.")
    try:
        mappings = parse_log_mappings(raw_mappings, base_dir=base_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc

    sources = {}
    for name, source in config.sources.items():
        if source.reconciliation is None:
            continue
        sources[name] = parse_source_reconciliation(name, source.reconciliation, mappings, base_dir)
    return ReconciliationConfig(sources=sources, mappings=mappings)


def parse_source_reconciliation(
    source: str, raw: Mapping[str, Any], mappings: Mapping[str, LogMapping], base_dir: Path | None
) -> SourceReconciliation:
    """Build one source's settings from its `[sources.NAME.reconciliation]` table."""
    where = f"[sources.{source}.reconciliation]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table.")
    try:
        table = _ReconciliationTable.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where} {location}: {first['msg']}.") from exc

    mapping_name = table.mapping or source
    if mapping_name not in mappings:
        known = ", ".join(sorted(mappings))
        hint = "set mapping" if table.mapping is None else "fix mapping"
        raise ConfigError(f"{where} mapping: no log mapping is named {mapping_name!r} ({hint}; known: {known}).")
    mapping = _with_overrides(mappings[mapping_name], table, base_dir)
    if mapping.engine == "duckdb" and mapping.local_root is None:
        raise ConfigError(
            f"{where} local_root: the {mapping_name!r} mapping is read with DuckDB and needs the directory "
            "that holds its dt=YYYY-MM-DD/ partitions; set local_root."
        )

    window = WINDOWS[table.window]
    settle_lag = parse_duration(table.settle_lag)
    lag_margin = parse_duration(table.lag_margin)
    return SourceReconciliation(
        source=source,
        mapping=mapping,
        strategy=table.strategy or mapping.strategy,
        window=window,
        settle_lag=settle_lag,
        lag_margin=lag_margin,
        tolerance=timedelta(seconds=table.tolerance_seconds),
        transaction_tolerance=timedelta(seconds=table.transaction_tolerance_seconds),
        trust_transaction_id=table.trust_transaction_id,
        hint_pointers=table.hint_pointers,
    )


def _with_overrides(mapping: LogMapping, table: _ReconciliationTable, base_dir: Path | None) -> LogMapping:
    update: dict[str, Any] = {}
    if table.engine is not None:
        update["engine"] = table.engine
    if table.local_root is not None:
        root = Path(table.local_root)
        update["local_root"] = root if root.is_absolute() or base_dir is None else base_dir / root
    return mapping.model_copy(update=update) if update else mapping
