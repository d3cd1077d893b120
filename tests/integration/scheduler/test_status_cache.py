"""The scheduler's status cache reads only the task rows the engine says it wrote, and
everything at least every ``full_every`` seconds (a real database, SQLite and Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from stepwell.server import Database
from stepwell.v1 import common_pb2
from stepwell_scheduler.app import migrate
from stepwell_scheduler.models import PENDING, RUNNING, SUCCEEDED, RunRow, TaskRow
from stepwell_scheduler.status import StatusCache


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Database]:
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_pg_url")
    else:
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'scheduler.db'}"
    db = Database(url)
    migrate(db.engine)
    yield db
    db.dispose()


def _seed(db: Database, tasks: int) -> None:
    stamp = datetime.now(timezone.utc)
    with db.session() as s:
        s.add(
            RunRow(
                run_id="r1", pipeline_name="p", spec={}, parameters={}, pipeline_root="/tmp/r1",
                state=RUNNING, created_at=stamp,
            )
        )
        for i in range(tasks):
            s.add(
                TaskRow(
                    run_id="r1", qualified_name=f"t{i}", name=f"t{i}", kind="container", component="c",
                    state=PENDING, ready_at=stamp,
                )
            )


def _set_state(db: Database, name: str, state: str) -> None:
    with db.session() as s:
        s.execute(update(TaskRow).where(TaskRow.run_id == "r1", TaskRow.qualified_name == name).values(state=state))


def _states(cache: StatusCache, db: Database) -> dict[str, str]:
    with db.session() as s:
        snapshot = cache.snapshot(s, "r1")
    assert snapshot is not None
    return {task_id: common_pb2.RuntimeState.Name(e.detail.state) for task_id, e in snapshot.tasks.items()}


def test_only_noted_rows_are_read_until_a_whole_read_is_due(database: Database) -> None:
    _seed(database, 5)
    cache = StatusCache(full_every=3600)
    assert set(_states(cache, database)) == {f"t{i}" for i in range(5)}

    # Written without telling the cache: the snapshot keeps what it read (no whole read due).
    _set_state(database, "t1", SUCCEEDED)
    assert _states(cache, database)["t1"] == PENDING
    # Told: that row is read again, the others are kept.
    cache.note_changed("r1", ["t1"])
    states = _states(cache, database)
    assert states["t1"] == SUCCEEDED and set(states) == {f"t{i}" for i in range(5)}

    # A row that is gone disappears once noted; "unknown which" reads everything.
    with database.session() as s:
        s.execute(TaskRow.__table__.delete().where(TaskRow.qualified_name == "t4"))
    _set_state(database, "t2", SUCCEEDED)
    cache.note_changed("r1", ["t4"])
    states = _states(cache, database)
    assert "t4" not in states and states["t2"] == PENDING
    cache.note_changed("r1", None)
    assert _states(cache, database)["t2"] == SUCCEEDED


def test_a_whole_read_is_due_after_full_every(database: Database) -> None:
    _seed(database, 3)
    cache = StatusCache(full_every=0.0)
    _states(cache, database)
    _set_state(database, "t0", SUCCEEDED)
    # Nobody told the cache, but a whole read is due at every snapshot.
    assert _states(cache, database)["t0"] == SUCCEEDED
