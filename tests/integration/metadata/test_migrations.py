"""The metadata service's migrations: fresh databases, restarts, and keeping to ``md_*`` tables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from stepwell_metadata.app import MIGRATIONS_DIR, VERSION_TABLE, MetadataApp
from stepwell_metadata.domain import NewContext
from stepwell_metadata.models import Base
from stepwell_metadata.settings import MetadataSettings

MD_TABLES = {
    "md_contexts",
    "md_executions",
    "md_artifacts",
    "md_events",
    "md_cache_entries",
    "md_associations",
    "md_attributions",
}


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    eng = create_engine(empty_db_url)
    yield eng
    eng.dispose()


def make_app(url: str) -> MetadataApp:
    return MetadataApp(MetadataSettings(metadata_database_url=url))


def versions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def test_fresh_database_gets_only_md_tables(empty_db_url: str, engine: Engine) -> None:
    # Another service's tables and Alembic history in the same database.
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE api_runs (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
        conn.execute(text("INSERT INTO api_runs (id, name) VALUES (1, 'kept')"))
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('api_0007')"))
    before = set(inspect(engine).get_table_names())

    app = make_app(empty_db_url)
    app.migrate()
    app.stop()

    after = set(inspect(engine).get_table_names())
    assert after - before == MD_TABLES | {VERSION_TABLE}
    assert all(t.startswith("md_") for t in after - before - {VERSION_TABLE})
    assert versions(engine) == ["0002"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM api_runs")).scalars().all() == ["kept"]
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            "api_0007"
        ]


def test_migrations_are_idempotent_across_restarts(empty_db_url: str, engine: Engine) -> None:
    first = make_app(empty_db_url)
    first.start(port=0)
    ctx = first.service.get_or_create_context(NewContext(type="system.Pipeline", name="p"))
    first.stop()

    second = make_app(empty_db_url)
    second.start(port=0)  # upgrades again: a no-op on a current database
    try:
        again = second.service.get_or_create_context(NewContext(type="system.Pipeline", name="p"))
        assert again.id == ctx.id
    finally:
        second.stop()
    assert versions(engine) == ["0002"]
    second.migrate()  # and once more in the same process


def test_models_match_migrations(empty_db_url: str, engine: Engine) -> None:
    app = make_app(empty_db_url)
    app.migrate()
    app.stop()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []


def test_downgrade_removes_only_md_tables(empty_db_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE sched_plans (id INTEGER PRIMARY KEY)"))
    app = make_app(empty_db_url)
    app.migrate()
    app.stop()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["version_table"] = VERSION_TABLE
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) == {"sched_plans", VERSION_TABLE}
