"""The scheduler's Alembic migrations create exactly the tables its models describe
(partial indexes included), on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwell_scheduler.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_scheduler.models import Base
from tests.migrations import migrate_twice_and_compare


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_models(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scheduler.db'}" if backend == "sqlite" else str(request.getfixturevalue("fresh_pg_url"))
    diff, tables, indexes = migrate_twice_and_compare(url, MIGRATIONS_DIR, VERSION_TABLE, Base.metadata)
    assert diff == []
    assert tables == {"sched_runs", "sched_tasks", VERSION_TABLE}
    assert "ix_sched_tasks_unrecorded" in indexes["sched_tasks"]
