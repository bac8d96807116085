"""The ledger tables.

`events` has one row per fact; `UNIQUE (source, idempotency_key)` is the only
dedupe mechanism and it is permanent. `reconciliation_runs` records each run
that wrote or retracted reconciled rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.types import JSONPayload, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing row id.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Origin:
    """Values of `events.origin`."""

    PUSH = "push"
    RECONCILIATION = "reconciliation"
    API = "api"


class ReconciliationRun(Base):
    """One reconciliation of one source over one half-open UTC window."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rows_scanned: Mapped[int] = mapped_column(BigInteger, default=0)
    gaps_filled: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_retracted: Mapped[int] = mapped_column(BigInteger, default=0)
    pushes_without_log: Mapped[int] = mapped_column(BigInteger, default=0)
    query_id: Mapped[str | None] = mapped_column(String(128))
    bytes_scanned: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(None, "source", "window_start", "window_end"),
        # At most one running run per source and window, across processes.
        Index(
            "uq_reconciliation_runs_running_window",
            "source",
            "window_start",
            "window_end",
            unique=True,
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
    )


class Event(Base):
    """One fact, unique per (source, idempotency key)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    origin: Mapped[str] = mapped_column(String(16))
    payload: Mapped[Any] = mapped_column(JSONPayload)
    body_sha256: Mapped[str] = mapped_column(String(64))
    log_record_id: Mapped[str | None] = mapped_column(String(255))
    reconciliation_run_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("reconciliation_runs.id", ondelete="SET NULL")
    )

    __table_args__ = (
        UniqueConstraint("source", "idempotency_key"),
        # Metric series: one source, a set of event types, a time range, split by origin.
        Index(None, "source", "event_type", "occurred_at", "origin"),
        # Per-subject series and reconciliation matching.
        Index(None, "source", "subject", "occurred_at"),
        Index(None, "reconciliation_run_id"),
    )
