"""The API service's first tables: runs and their tasks.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_name", sa.Text(), nullable=False),
        sa.Column("pipeline_spec", sa.JSON(), nullable=False),
        sa.Column("platform_spec", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("pipeline_root", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handover_attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_api_runs"),
    )
    op.create_index("ix_api_runs_namespace_created_at", "api_runs", ["namespace", "created_at", "run_id"])
    op.create_index("ix_api_runs_created_at", "api_runs", ["created_at", "run_id"])
    op.create_index("ix_api_runs_state", "api_runs", ["state"])
    op.create_index("ix_api_runs_experiment_id", "api_runs", ["experiment_id"])

    op.create_table(
        "api_run_tasks",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=1024), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("log_uri", sa.Text(), nullable=False),
        sa.Column("parent_task_id", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["api_runs.run_id"], name="fk_api_run_tasks_run_id", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "task_id", name="pk_api_run_tasks"),
    )


def downgrade() -> None:
    op.drop_table("api_run_tasks")
    op.drop_index("ix_api_runs_experiment_id", table_name="api_runs")
    op.drop_index("ix_api_runs_state", table_name="api_runs")
    op.drop_index("ix_api_runs_created_at", table_name="api_runs")
    op.drop_index("ix_api_runs_namespace_created_at", table_name="api_runs")
    op.drop_table("api_runs")
