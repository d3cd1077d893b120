"""The engine's direct writes (``engine.direct``) store and read rows exactly as the ORM
does, leave the objects as an ORM flush or load would, and hand whatever they do not
handle to the ORM untouched. A real database, SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect, select, update
from sqlalchemy.orm.exc import StaleDataError

from stepwell.server import Database
from stepwell_scheduler.app import migrate
from stepwell_scheduler.engine.direct import BATCH, DirectRows
from stepwell_scheduler.engine.harvest import _clean
from stepwell_scheduler.models import RUNNING, SUCCEEDED, RunRow, TaskRow
from tests.integration.scheduler.rows import STAMP, seed
from tests.integration.scheduler.rows import task as _task


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Database]:
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 's.db'}"
    db = Database(url)
    migrate(db.engine)
    seed(db)
    yield db
    db.dispose()


def _columns(db: Database, name: str) -> dict[str, Any]:
    """A task row as stored, read through plain SQL (not the identity map), but its id."""
    table = TaskRow.__table__
    with db.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.qualified_name == name)).mappings().one()
    return {k: v for k, v in row.items() if k != "id"}


def _change_and_add(s: Any, suffix: str) -> TaskRow:
    """What a step's transaction does: ends the kept row, adds a claimed successor."""
    kept = s.scalars(select(TaskRow).where(TaskRow.qualified_name == "kept")).one()
    kept.state, kept.outputs, kept.finished_at, kept.error = SUCCEEDED, {"parameters": {"Output": 9}}, STAMP, ""
    kept.deadline_at = None
    new = _task(f"next{suffix}", state=RUNNING, started_at=STAMP, attempt=1, lookup_execution=True)
    s.add(new)
    return new


def test_direct_writes_store_what_the_orm_stores(database: Database) -> None:
    direct = DirectRows(database.engine)
    with database.session() as s:
        _change_and_add(s, "-orm")
    orm_ended, orm_new = _columns(database, "kept"), _columns(database, "next-orm")
    with database.session() as s:  # back to RUNNING, then the same changes, written directly
        s.scalars(select(TaskRow).where(TaskRow.qualified_name == "kept")).one().state = RUNNING
    with database.session() as s:
        new = _change_and_add(s, "-direct")
        assert direct.flush(s)
        assert not s.new and not s.dirty  # nothing left for the commit's flush
    assert _columns(database, "kept") == orm_ended
    assert {**_columns(database, "next-direct"), "qualified_name": "", "name": ""} == {
        **orm_new, "qualified_name": "", "name": "",
    }
    # As an ORM flush leaves them: persistent with an id, every column loaded, clean.
    state = inspect(new)
    assert new.id and state.detached and _clean(new)
    assert new.failures == 0 and new.unrecorded is False and new.outputs == {}


def test_what_direct_writes_do_not_handle_is_left_to_the_orm(database: Database) -> None:
    direct = DirectRows(database.engine)
    with database.session() as s:
        run = direct.lock_run(s, "r1")
        assert run is not None
        _change_and_add(s, "-a")
        run.state = SUCCEEDED  # a changed run: not a task row
        assert not direct.flush(s)
        assert s.new and s.dirty  # untouched: the commit's flush writes them
    assert _columns(database, "kept")["state"] == SUCCEEDED
    with database.session() as s:
        assert s.get(RunRow, "r1").state == SUCCEEDED
        for i in range(BATCH + 1):
            s.add(_task(f"many-{i}"))
        assert not direct.flush(s)  # a large batch: one statement of the ORM's
    with database.session() as s:
        s.delete(s.scalars(select(TaskRow).where(TaskRow.qualified_name == "many-0")).one())
        assert not direct.flush(s)
    with database.session() as s:
        names = set(s.scalars(select(TaskRow.qualified_name)))
    assert {"next-a", "many-1", f"many-{BATCH}"} <= names and "many-0" not in names


@pytest.mark.parametrize("beside_an_insert", [False, True])
def test_an_update_of_a_row_that_is_gone_fails(database: Database, beside_an_insert: bool) -> None:
    # Beside an INSERT, on Postgres, the two go in one statement; the stale UPDATE fails it all.
    direct = DirectRows(database.engine)
    with database.session() as s:
        kept = s.scalars(select(TaskRow).where(TaskRow.qualified_name == "kept")).one()
    with database.session() as s:
        s.delete(s.get(TaskRow, kept.id))
    with pytest.raises(StaleDataError), database.session() as s:
        copy = s.merge(kept, load=False)
        copy.state = SUCCEEDED
        if beside_an_insert:
            s.add(_task("beside"))
        direct.flush(s)
    with database.session() as s:
        assert s.scalars(select(TaskRow).where(TaskRow.qualified_name == "beside")).first() is None


def test_many_rows_in_one_flush_store_what_the_orm_stores(database: Database) -> None:
    # Several changed and new rows (one statement on Postgres), as a fan-out's step writes.
    direct = DirectRows(database.engine)
    with database.session() as s:
        for name in ("x1", "x2"):
            s.add(_task(name, state=RUNNING, attempt=1))
    with database.session() as s:
        for name in ("x1", "x2"):
            row = s.scalars(select(TaskRow).where(TaskRow.qualified_name == name)).one()
            row.state, row.outputs, row.finished_at = SUCCEEDED, {"parameters": {"n": name}}, STAMP
        for i in range(3):
            s.add(_task(f"orm-{i}", state=RUNNING, started_at=STAMP, attempt=1, lookup_execution=True))
    orm = {name: _columns(database, name) for name in ("x1", "x2", "orm-0", "orm-1", "orm-2")}
    with database.session() as s:
        for name in ("x1", "x2"):
            s.scalars(select(TaskRow).where(TaskRow.qualified_name == name)).one().state = RUNNING
    with database.session() as s:
        for name in ("x1", "x2"):
            row = s.scalars(select(TaskRow).where(TaskRow.qualified_name == name)).one()
            row.state, row.outputs, row.finished_at = SUCCEEDED, {"parameters": {"n": name}}, STAMP
        added = [_task(f"direct-{i}", state=RUNNING, started_at=STAMP, attempt=1, lookup_execution=True) for i in range(3)]
        s.add_all(added)
        assert direct.flush(s)
        assert not s.new and not s.dirty
    # On Postgres: one statement for the five rows.
    assert bool(direct._together_sql) == (database.engine.dialect.name == "postgresql")
    for name in ("x1", "x2"):
        assert _columns(database, name) == orm[name]
    for i, row in enumerate(added):
        assert row.id and _clean(row) and inspect(row).detached
        stored = _columns(database, f"direct-{i}")
        assert {**stored, "qualified_name": "", "name": ""} == {**orm[f"orm-{i}"], "qualified_name": "", "name": ""}
    assert len({row.id for row in added}) == 3


def test_a_run_read_directly_is_the_run_the_orm_reads(database: Database) -> None:
    direct = DirectRows(database.engine)
    with database.session() as s:
        orm = s.execute(select(RunRow).where(RunRow.run_id == "r1")).scalar_one()
        expected = {c.key: getattr(orm, c.key) for c in RunRow.__table__.columns if c.key != "spec"}
    with database.session() as s:
        run = direct.lock_run(s, "r1")
        assert run is not None
        assert {c: getattr(run, c) for c in expected} == expected
        assert not s.dirty and inspect(run).persistent
        assert run.spec == {"big": "spec"}  # loaded when used, as a deferred column is
        assert direct.lock_run(s, "nope") is None
        # Held already: refreshed through the ORM, the same object.
        s.execute(update(RunRow).where(RunRow.run_id == "r1").values(options={"timed_out": "x"}))
        assert direct.lock_run(s, "r1") is run and run.options == {"timed_out": "x"}
    direct.enabled = False
    with database.session() as s:
        assert direct.lock_run(s, "r1") is not None
