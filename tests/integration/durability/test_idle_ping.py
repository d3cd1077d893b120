"""A pooled Postgres connection is tested before reuse only after it sat idle
(``stepwell.server.db``): a server that dropped it meanwhile costs no failed call, and a
connection in steady use costs no extra round trip. Real Postgres, real terminated
backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, exc, text

import stepwell.server.db as db_module
from stepwell.server import Database


@pytest.fixture
def database(fresh_pg_url: str) -> Iterator[Database]:
    db = Database(fresh_pg_url)
    yield db
    db.dispose()


@pytest.fixture
def pings(database: Database) -> Iterator[list[int]]:
    """Counts the round trips that test a connection before it is handed out."""
    found: list[int] = []
    dialect: Any = database.engine.dialect
    real = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        found.append(1)
        return bool(real(dbapi_connection))

    dialect.do_ping = do_ping
    yield found
    dialect.do_ping = real


def _backend_pid(database: Database) -> int:
    with database.session() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pg_admin_url: str, pid: int) -> None:
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    finally:
        admin.dispose()


def test_a_connection_in_steady_use_is_not_tested(database: Database, pings: list[int]) -> None:
    first = _backend_pid(database)
    for _ in range(20):
        assert _backend_pid(database) == first  # the same pooled connection each time
    assert pings == []


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    database: Database, pings: list[int], pg_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.05)
    dropped = _backend_pid(database)
    _terminate(pg_admin_url, dropped)
    time.sleep(0.2)
    assert _backend_pid(database) != dropped  # no error: the test found it dead
    assert pings == [1]


def test_a_connection_dropped_in_steady_use_fails_one_call_then_is_replaced(
    database: Database, pings: list[int], pg_admin_url: str
) -> None:
    """The trade-off, as documented: the statement in flight fails, marked as a lost
    connection (``rpc_errors`` answers UNAVAILABLE), and the next call gets a new one."""
    dropped = _backend_pid(database)
    _terminate(pg_admin_url, dropped)
    with pytest.raises(exc.DBAPIError) as failed:
        _backend_pid(database)
    assert failed.value.connection_invalidated
    assert _backend_pid(database) != dropped
    assert pings == []


def test_an_autocommit_connection_commits_each_statement_without_an_extra_round_trip(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Database.autocommit`` on psycopg2 switches the driver itself: no isolation level
    is set or reset (SQLAlchemy's option sent ``SET default_transaction_isolation`` at
    every return to the pool), each statement is committed at once, and the connection
    goes back to the pool transactional."""
    levels: list[Any] = []
    dialect: Any = database.engine.dialect
    for name in ("set_isolation_level", "reset_isolation_level"):
        real = getattr(dialect, name)
        monkeypatch.setattr(dialect, name, lambda *args, _real=real: (levels.append(args), _real(*args))[1])
    with database.autocommit() as connection:
        connection.execute(text("CREATE TABLE probe (x int)"))
        connection.execute(text("INSERT INTO probe VALUES (1)"))
        with database.engine.connect() as other:  # committed: another connection sees it
            assert other.execute(text("SELECT count(*) FROM probe")).scalar() == 1
    assert levels == []
    with database.engine.connect() as connection:  # the same connection (last in, first out)
        assert connection.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
        connection.execute(text("INSERT INTO probe VALUES (2)"))
        connection.rollback()
        assert connection.execute(text("SELECT count(*) FROM probe")).scalar() == 1
