"""Task rows say whether the task reused a cached execution's outputs (no process ran).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_run_tasks") as batch:
        batch.add_column(sa.Column("cached", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("api_run_tasks") as batch:
        batch.drop_column("cached")
