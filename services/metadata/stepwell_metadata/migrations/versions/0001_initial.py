"""The metadata service's first schema: contexts, executions, artifacts, events and their links.

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
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "md_contexts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("parent_id", Id, sa.ForeignKey("md_contexts.id", name="fk_md_contexts_parent_id"), nullable=True),
        sa.Column("custom_properties", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("type", "name", name="uq_md_contexts_type_name"),
    )
    op.create_index("ix_md_contexts_parent_id", "md_contexts", ["parent_id"])

    op.create_table(
        "md_executions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("custom_properties", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_md_executions_type_name", "md_executions", ["type", "name"])

    op.create_table(
        "md_artifacts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_md_artifacts_uri", "md_artifacts", ["uri"])

    op.create_table(
        "md_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("execution_id", Id, sa.ForeignKey("md_executions.id", name="fk_md_events_execution_id"), nullable=False),
        sa.Column("artifact_id", Id, sa.ForeignKey("md_artifacts.id", name="fk_md_events_artifact_id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("execution_id", "artifact_id", "type", "path", "index", name="uq_md_events_link"),
    )
    op.create_index("ix_md_events_artifact_id", "md_events", ["artifact_id"])

    op.create_table(
        "md_associations",
        sa.Column("context_id", Id, sa.ForeignKey("md_contexts.id", name="fk_md_associations_context_id"), primary_key=True),
        sa.Column("execution_id", Id, sa.ForeignKey("md_executions.id", name="fk_md_associations_execution_id"), primary_key=True),
    )
    op.create_index("ix_md_associations_execution_id", "md_associations", ["execution_id"])

    op.create_table(
        "md_attributions",
        sa.Column("context_id", Id, sa.ForeignKey("md_contexts.id", name="fk_md_attributions_context_id"), primary_key=True),
        sa.Column("artifact_id", Id, sa.ForeignKey("md_artifacts.id", name="fk_md_attributions_artifact_id"), primary_key=True),
    )
    op.create_index("ix_md_attributions_artifact_id", "md_attributions", ["artifact_id"])


def downgrade() -> None:
    op.drop_table("md_attributions")
    op.drop_table("md_associations")
    op.drop_table("md_events")
    op.drop_table("md_artifacts")
    op.drop_table("md_executions")
    op.drop_table("md_contexts")
