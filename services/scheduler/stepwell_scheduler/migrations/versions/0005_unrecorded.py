"""Task rows whose execution's end is still to be recorded in the metadata service (an
outbox: a result of parameters only is recorded just after the tasks it lets start).
Also makes ``sched_runs.options`` NOT NULL, as the model always declared it (0002 added
it nullable).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE sched_runs SET options = '{}' WHERE options IS NULL")
    with op.batch_alter_table("sched_runs") as batch:
        batch.alter_column("options", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("sched_tasks") as batch:
        batch.add_column(sa.Column("unrecorded", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(
        "ix_sched_tasks_unrecorded",
        "sched_tasks",
        ["run_id"],
        postgresql_where=sa.text("unrecorded"),
        sqlite_where=sa.text("unrecorded"),
    )


def downgrade() -> None:
    with op.batch_alter_table("sched_runs") as batch:
        batch.alter_column("options", existing_type=sa.JSON(), nullable=True)
    op.drop_index("ix_sched_tasks_unrecorded", table_name="sched_tasks")
    with op.batch_alter_table("sched_tasks") as batch:
        batch.drop_column("unrecorded")
