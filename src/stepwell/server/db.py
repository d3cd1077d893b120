"""Database plumbing shared by the services: engines, sessions and Alembic upgrades.

Each service owns its tables and its own Alembic history (with its own version table),
so several services may share one Postgres database or one SQLite file without ever
touching each other's tables.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_upgrade_lock = threading.Lock()


def make_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """An engine for ``url`` tuned for a service: WAL and a busy timeout on SQLite, a pool on Postgres.

    ``pre_ping`` tests every pooled connection with a round trip before handing it out
    (a Postgres restart then costs no failed call). A service whose calls are a single
    statement may turn it off: a dead connection then fails one call, with
    ``connection_invalidated`` set on the error (:func:`stepwell.server.rpc_errors`
    answers UNAVAILABLE), and SQLAlchemy replaces every older pooled connection.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=pre_ping)


def upgrade(engine: Engine, migrations_dir: str | os.PathLike[str], version_table: str) -> None:
    """Brings the service's tables up to the newest migration in ``migrations_dir``.

    Runs at service start; a fresh database is created from scratch.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    with _upgrade_lock, engine.begin() as connection:
        cfg.attributes["connection"] = connection
        cfg.attributes["version_table"] = version_table
        command.upgrade(cfg, "head")


def run_migrations_env(target_metadata: MetaData) -> None:
    """The body of every service's Alembic ``env.py``.

    Uses the connection handed over by :func:`upgrade` when there is one, else
    ``$STEPWELL_DATABASE_URL`` (for ``alembic revision --autogenerate`` by hand).
    """
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    version_table = config.attributes.get("version_table", "alembic_version")
    if connection is None:
        url = os.environ.get("STEPWELL_DATABASE_URL", "sqlite:///stepwell-dev.db")
        with make_engine(url).begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, version_table=version_table, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=True,
    )
    context.run_migrations()


class Database:
    """An engine and its session factory; the service layer opens transactions with :meth:`session`."""

    def __init__(self, url: str, *, pre_ping: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url, pre_ping=pre_ping)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Shares the engine's pool; every statement commits on its own.
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commits when the block ends normally, rolls back on an exception."""
        with self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which every statement is its own transaction.

        For hot paths whose write is one statement: no BEGIN and COMMIT round trips,
        no ORM unit of work. Anything needing two statements to agree belongs in
        :meth:`session`.
        """
        with self._autocommit.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
