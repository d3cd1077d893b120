"""Status versions: runs count the status reports applied to them and remember the last
one that deleted task rows; task rows carry the version that last wrote them, indexed
with their run (and by parent), so a watcher's GetRun reads only what changed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_runs") as batch:
        batch.add_column(sa.Column("status_version", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("tasks_removed_version", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("api_run_tasks") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger(), server_default="0", nullable=False))
    op.create_index("ix_api_run_tasks_run_id_version", "api_run_tasks", ["run_id", "version"])
    op.create_index("ix_api_run_tasks_run_id_parent_task_id", "api_run_tasks", ["run_id", "parent_task_id"])


def downgrade() -> None:
    op.drop_index("ix_api_run_tasks_run_id_parent_task_id", table_name="api_run_tasks")
    op.drop_index("ix_api_run_tasks_run_id_version", table_name="api_run_tasks")
    with op.batch_alter_table("api_run_tasks") as batch:
        batch.drop_column("version")
    with op.batch_alter_table("api_runs") as batch:
        batch.drop_column("tasks_removed_version")
        batch.drop_column("status_version")
