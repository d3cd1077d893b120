"""Database plumbing shared by the services: engines, sessions and Alembic upgrades.

Each service owns its tables and its own Alembic history (with its own version table),
so several services may share one Postgres database or one SQLite file without ever
touching each other's tables.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

_upgrade_lock = threading.Lock()

#: A pooled connection that has waited in the pool this long is tested before it is
#: handed out again (see :func:`make_engine`); one in steady use is not.
PING_AFTER_IDLE_S = 1.0


def make_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """An engine for ``url`` tuned for a service: WAL and a busy timeout on SQLite, a pool on Postgres.

    Pooled connections are reused last in, first out. ``pre_ping`` tests a pooled connection with a round trip before handing it out when
    it has been idle in the pool for :data:`PING_AFTER_IDLE_S` or more (a Postgres
    restart while the service was quiet then costs no failed call). A connection in
    steady use is not tested: a round trip per transaction was a third of a short
    transaction's time. A restart in the middle of steady use fails the statement in
    flight, with ``connection_invalidated`` set on the error
    (:func:`stepwell.server.rpc_errors` answers UNAVAILABLE), and SQLAlchemy replaces
    every older pooled connection; the engine's step and the clients' retries go on. A
    service whose calls are a single statement may turn the test off altogether.
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
    # Last in, first out: a service's next transaction takes the connection its last one
    # returned, whose Postgres backend has its caches warm and the engine's prepared
    # statements ready (first in, first out cycled every transaction through all ten).
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True)
    if pre_ping:
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle for a while only."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["stepwell.returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("stepwell.returned_at")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
            return  # new, or in steady use
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as err:
            if engine.dialect.is_disconnect(err, dbapi_conn, None):
                # The pool drops it, and every connection older (as pool_pre_ping does:
                # a restarted server dropped them all), and hands out a new one.
                raise exc.InvalidatePoolError(str(err)) from err
            raise


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
        if self.engine.dialect.driver != "psycopg2":
            with self._autocommit.connect() as connection:
                yield connection
            return
        # psycopg2: the driver's own switch, as SQLAlchemy's ping does. The isolation
        # level option would cost a round trip (``SET default_transaction_isolation``)
        # each time the connection goes back to the pool.
        with self.engine.connect() as connection:
            dbapi_connection: Any = connection.connection.dbapi_connection
            dbapi_connection.autocommit = True
            try:
                yield connection
            finally:
                if not dbapi_connection.closed:
                    dbapi_connection.autocommit = False

    def dispose(self) -> None:
        self.engine.dispose()
