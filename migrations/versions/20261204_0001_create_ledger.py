"""Create the events ledger and reconciliation runs.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
utc = sa.DateTime(timezone=True)
payload = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("window_start", utc, nullable=False),
        sa.Column("window_end", utc, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("engine", sa.String(32), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("started_at", utc, nullable=True),
        sa.Column("finished_at", utc, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", utc, nullable=True),
        sa.Column("rows_scanned", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("gaps_filled", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rows_retracted", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("pushes_without_log", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("query_id", sa.String(128), nullable=True),
        sa.Column("bytes_scanned", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_runs"),
    )
    op.create_index(
        "ix_reconciliation_runs_source_window_start_window_end",
        "reconciliation_runs",
        ["source", "window_start", "window_end"],
    )
    op.create_table(
        "events",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("occurred_at", utc, nullable=False),
        sa.Column("received_at", utc, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("payload", payload, nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("log_record_id", sa.String(255), nullable=True),
        sa.Column("reconciliation_run_id", big_id, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("source", "idempotency_key", name="uq_events_source_idempotency_key"),
        sa.ForeignKeyConstraint(
            ["reconciliation_run_id"],
            ["reconciliation_runs.id"],
            name="fk_events_reconciliation_run_id_reconciliation_runs",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_events_source_event_type_occurred_at_origin", "events", ["source", "event_type", "occurred_at", "origin"]
    )
    op.create_index("ix_events_source_subject_occurred_at", "events", ["source", "subject", "occurred_at"])
    op.create_index("ix_events_reconciliation_run_id", "events", ["reconciliation_run_id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("reconciliation_runs")
