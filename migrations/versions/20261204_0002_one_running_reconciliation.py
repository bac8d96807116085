"""Allow one running reconciliation per source and window.

A partial unique index makes a second `running` row for the same source and
window fail, on PostgreSQL and SQLite alike, so two processes that trigger the
same window at once cannot both start a run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_reconciliation_runs_running_window"
RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_index(
        INDEX,
        "reconciliation_runs",
        ["source", "window_start", "window_end"],
        unique=True,
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="reconciliation_runs")
