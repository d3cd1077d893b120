"""Pipelines, pipeline versions, experiments and recurring runs; runs gain their
storage state, recurring run, pipeline version reference and service account, and
indexes for filtered, sorted listings.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_runs") as batch:
        batch.add_column(sa.Column("storage_state", sa.String(length=32), server_default="AVAILABLE", nullable=False))
        batch.add_column(sa.Column("recurring_run_id", sa.String(length=64), server_default="", nullable=False))
        batch.add_column(sa.Column("pipeline_id", sa.String(length=64), server_default="", nullable=False))
        batch.add_column(sa.Column("pipeline_version_id", sa.String(length=64), server_default="", nullable=False))
        batch.add_column(sa.Column("service_account", sa.Text(), server_default="", nullable=False))
    op.drop_index("ix_api_runs_state", table_name="api_runs")
    op.drop_index("ix_api_runs_experiment_id", table_name="api_runs")
    op.create_index("ix_api_runs_state_created_at", "api_runs", ["state", "created_at", "run_id"])
    op.create_index("ix_api_runs_experiment_created_at", "api_runs", ["experiment_id", "created_at", "run_id"])
    op.create_index("ix_api_runs_storage_state_created_at", "api_runs", ["storage_state", "created_at", "run_id"])
    op.create_index("ix_api_runs_recurring_run_id_state", "api_runs", ["recurring_run_id", "state"])

    op.create_table(
        "api_pipelines",
        sa.Column("pipeline_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pipeline_id", name="pk_api_pipelines"),
        sa.UniqueConstraint("namespace", "name", name="uq_api_pipelines_namespace_name"),
    )
    op.create_index("ix_api_pipelines_namespace_created_at", "api_pipelines", ["namespace", "created_at", "pipeline_id"])

    op.create_table(
        "api_pipeline_versions",
        sa.Column("pipeline_version_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("package_url", sa.Text(), nullable=False),
        sa.Column("code_source_url", sa.Text(), nullable=False),
        sa.Column("pipeline_spec", sa.JSON(), nullable=False),
        sa.Column("platform_spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["api_pipelines.pipeline_id"],
            name="fk_api_pipeline_versions_pipeline_id", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline_version_id", name="pk_api_pipeline_versions"),
        sa.UniqueConstraint("pipeline_id", "name", name="uq_api_pipeline_versions_pipeline_id_name"),
    )
    op.create_index(
        "ix_api_pipeline_versions_pipeline_created_at", "api_pipeline_versions",
        ["pipeline_id", "created_at", "pipeline_version_id"],
    )

    op.create_table(
        "api_experiments",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("storage_state", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", name="pk_api_experiments"),
        sa.UniqueConstraint("namespace", "display_name", name="uq_api_experiments_namespace_display_name"),
    )
    op.create_index(
        "ix_api_experiments_namespace_created_at", "api_experiments", ["namespace", "created_at", "experiment_id"]
    )

    op.create_table(
        "api_recurring_runs",
        sa.Column("recurring_run_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_version_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_spec", sa.JSON(), nullable=False),
        sa.Column("platform_spec", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("pipeline_root", sa.Text(), nullable=False),
        sa.Column("service_account", sa.Text(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("trigger_kind", sa.String(length=16), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("interval_second", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("no_catchup", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fire_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recurring_run_id", name="pk_api_recurring_runs"),
    )
    op.create_index("ix_api_recurring_runs_due", "api_recurring_runs", ["enabled", "next_fire_at"])
    op.create_index(
        "ix_api_recurring_runs_namespace_created_at", "api_recurring_runs",
        ["namespace", "created_at", "recurring_run_id"],
    )
    op.create_index("ix_api_recurring_runs_experiment_id", "api_recurring_runs", ["experiment_id"])


def downgrade() -> None:
    op.drop_table("api_recurring_runs")
    op.drop_table("api_experiments")
    op.drop_table("api_pipeline_versions")
    op.drop_table("api_pipelines")
    op.drop_index("ix_api_runs_recurring_run_id_state", table_name="api_runs")
    op.drop_index("ix_api_runs_storage_state_created_at", table_name="api_runs")
    op.drop_index("ix_api_runs_experiment_created_at", table_name="api_runs")
    op.drop_index("ix_api_runs_state_created_at", table_name="api_runs")
    op.create_index("ix_api_runs_state", "api_runs", ["state"])
    op.create_index("ix_api_runs_experiment_id", "api_runs", ["experiment_id"])
    with op.batch_alter_table("api_runs") as batch:
        for column in ("service_account", "pipeline_version_id", "pipeline_id", "recurring_run_id", "storage_state"):
            batch.drop_column(column)
