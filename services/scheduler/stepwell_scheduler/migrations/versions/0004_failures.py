"""Failed attempts per task row, counted apart from attempts lost when a scheduler died
(a ``retryPolicy`` allows ``maxRetryCount`` failures, whatever crashes happened).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sched_tasks") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    # Before this revision every attempt but the last of a queued or running row counted
    # as a failure; that is the best estimate for rows in flight during the upgrade.
    op.execute(
        "UPDATE sched_tasks SET failures = CASE WHEN attempt > 1 THEN attempt - 1 ELSE 0 END "
        "WHERE state IN ('PENDING', 'RUNNING')"
    )


def downgrade() -> None:
    with op.batch_alter_table("sched_tasks") as batch:
        batch.drop_column("failures")
