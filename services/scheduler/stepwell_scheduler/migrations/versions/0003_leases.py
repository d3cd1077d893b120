"""Run leases (owner and expiry), cancel requests any scheduler can record, task claimers
and the mark of tasks queued again after a crash.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sched_runs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_expires_at", TS, nullable=True))
        batch.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_sched_runs_lease_owner", "sched_runs", ["lease_owner"])
    with op.batch_alter_table("sched_tasks") as batch:
        batch.add_column(sa.Column("worker", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("lookup_execution", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("sched_tasks") as batch:
        batch.drop_column("lookup_execution")
        batch.drop_column("worker")
    op.drop_index("ix_sched_runs_lease_owner", table_name="sched_runs")
    with op.batch_alter_table("sched_runs") as batch:
        for name in ("cancel_requested", "lease_expires_at", "lease_owner"):
            batch.drop_column(name)
