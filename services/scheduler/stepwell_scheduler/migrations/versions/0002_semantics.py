"""Run options and deadlines; task cache fingerprints, retry backoff and deadlines.

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

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sched_runs") as batch:
        batch.add_column(sa.Column("options", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("deadline_at", TS, nullable=True))
    with op.batch_alter_table("sched_tasks") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("not_before", TS, nullable=True))
        batch.add_column(sa.Column("deadline_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sched_tasks") as batch:
        for name in ("deadline_at", "not_before", "cached", "fingerprint"):
            batch.drop_column(name)
    with op.batch_alter_table("sched_runs") as batch:
        batch.drop_column("deadline_at")
        batch.drop_column("options")
