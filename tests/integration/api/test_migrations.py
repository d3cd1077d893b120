"""The API service's Alembic migrations create exactly the tables its models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from stepwell.server import Database, upgrade
from stepwell_api.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_api.models import Base


def test_migrations_match_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)
        upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)  # a second upgrade is a no-op
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        db.dispose()
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
