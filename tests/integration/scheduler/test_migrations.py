"""The scheduler's Alembic migrations create exactly the tables its models describe
(partial indexes included), on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from stepwell.server import Database, upgrade
from stepwell_scheduler.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_scheduler.models import Base


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_models(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scheduler.db'}" if backend == "sqlite" else str(request.getfixturevalue("fresh_pg_url"))
    db = Database(url)
    try:
        upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)
        upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)  # a second upgrade is a no-op
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            found = inspect(conn)
            tables = set(found.get_table_names())
            indexes = {i["name"] for i in found.get_indexes("sched_tasks")}
    finally:
        db.dispose()
    assert diff == []
    assert tables == {"sched_runs", "sched_tasks", VERSION_TABLE}
    assert "ix_sched_tasks_unrecorded" in indexes
