"""The API service's Alembic migrations create exactly the tables its models describe."""

from __future__ import annotations

from stepwell_api.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_api.models import Base
from tests.migrations import migrate_twice_and_compare


def test_migrations_match_models(db_url: str) -> None:
    diff, tables, _ = migrate_twice_and_compare(db_url, MIGRATIONS_DIR, VERSION_TABLE, Base.metadata)
    assert diff == []
    assert tables == {
        "api_runs",
        "api_run_tasks",
        "api_pipelines",
        "api_pipeline_versions",
        "api_experiments",
        "api_recurring_runs",
        VERSION_TABLE,
    }
