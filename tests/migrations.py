"""Checking a service's Alembic migrations against its models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from stepwell.server import Database, upgrade


def migrate_twice_and_compare(
    url: str, migrations_dir: Path, version_table: str, models: MetaData
) -> tuple[list[Any], set[str], dict[str, set[str]]]:
    """Upgrades the database at ``url`` twice (the second must be a no-op) and returns what
    autogenerate still finds different from ``models``, the tables, and each table's
    index names."""
    db = Database(url)
    try:
        upgrade(db.engine, migrations_dir, version_table)
        upgrade(db.engine, migrations_dir, version_table)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": version_table, "compare_type": True})
            diff = compare_metadata(context, models)
            found = inspect(conn)
            tables = set(found.get_table_names())
            indexes = {t: {str(i["name"]) for i in found.get_indexes(t)} for t in tables}
    finally:
        db.dispose()
    return diff, tables, indexes
