"""The scheduler's first schema: runs and tasks.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from models.py: a migration is a fixed record of history.
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sched_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("pipeline_name", sa.String(256), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("pipeline_root", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("pipeline_context_id", sa.BigInteger(), nullable=False),
        sa.Column("run_context_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_sched_runs_state", "sched_runs", ["state"])
    op.create_table(
        "sched_tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("sched_runs.run_id", ondelete="CASCADE", name="fk_sched_tasks_run_id"),
            nullable=False,
        ),
        sa.Column("qualified_name", sa.String(512), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("parent", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("component", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("task_dir", sa.Text(), nullable=False),
        sa.Column("ready_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("log_uri", sa.Text(), nullable=False),
        sa.UniqueConstraint("run_id", "qualified_name", name="uq_sched_tasks_run_task"),
    )
    op.create_index("ix_sched_tasks_state", "sched_tasks", ["state"])
    op.create_index("ix_sched_tasks_run_id", "sched_tasks", ["run_id"])


def downgrade() -> None:
    op.drop_table("sched_tasks")
    op.drop_table("sched_runs")
