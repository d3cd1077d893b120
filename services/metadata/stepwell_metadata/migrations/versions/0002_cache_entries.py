"""The task cache index.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "md_cache_entries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("pipeline_name", sa.String(1024), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("task_name", sa.String(1024), nullable=False),
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_md_cache_entries_lookup", "md_cache_entries", ["pipeline_name", "namespace", "fingerprint"]
    )


def downgrade() -> None:
    op.drop_table("md_cache_entries")
