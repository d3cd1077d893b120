"""Fixtures for the metadata service's integration tests: real SQLite and Postgres databases.

``db_url`` is parametrized over both back ends. Postgres comes from
``$STEPWELL_TEST_DATABASE_URL`` (an admin URL; default: the local test server; a missing
server is an error, not a skip); each test module gets a fresh, uniquely named database
that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from stepwell.v1 import metadata_pb2_grpc
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.models import (
    ArtifactRow,
    AssociationRow,
    AttributionRow,
    ContextRow,
    EventRow,
    ExecutionRow,
)
from stepwell_metadata.settings import MetadataSettings

ADMIN_URL = os.environ.get(
    "STEPWELL_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def create_pg_database(prefix: str = "stepwell_md") -> str:
    """Creates an empty, uniquely named Postgres database and returns its URL."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drops a database made by :func:`create_pg_database`, disconnecting its clients."""
    name = make_url(url).database
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this test module."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh SQLite file for this test module."""
    path: Path = tmp_path_factory.mktemp("metadata-db") / "metadata.db"
    return f"sqlite:///{path}"


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test runs once on SQLite and once on Postgres."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="module")
def metadata_app(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetadataApp]:
    """The metadata service serving on a free loopback port over ``db_url``."""
    settings = MetadataSettings(home=tmp_path_factory.mktemp("home"), metadata_database_url=db_url)
    app = MetadataApp(settings)
    app.start(port=0)
    yield app
    app.stop()


@pytest.fixture(scope="module")
def stub(metadata_app: MetadataApp) -> Iterator[metadata_pb2_grpc.MetadataStub]:
    """A generated client stub connected to :func:`metadata_app`."""
    assert metadata_app.server is not None
    with grpc.insecure_channel(metadata_app.server.address) as channel:
        yield metadata_pb2_grpc.MetadataStub(channel)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database just for this test, on SQLite and on Postgres."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    """A direct connection to the service's database, for checking what was written."""
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def counts(engine: Engine) -> Callable[[], dict[str, int]]:
    """Row counts of every ``md_*`` table."""

    def _counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                model.__tablename__: conn.execute(select(func.count()).select_from(model)).scalar_one()
                for model in (ContextRow, ExecutionRow, ArtifactRow, EventRow, AssociationRow, AttributionRow)
            }

    return _counts


@pytest.fixture
def app(empty_db_url: str) -> Iterator[MetadataApp]:
    """The metadata service's layers (no gRPC) on a freshly migrated database."""
    app = MetadataApp(MetadataSettings(metadata_database_url=empty_db_url))
    app.migrate()
    yield app
    app.stop()
