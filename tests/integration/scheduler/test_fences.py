"""Runs taken unread in the engine's hot transaction and checked by its write
(``engine.fences``), the write's BEGIN sent with it, its statement prepared once per
connection (``engine.prepared``). Postgres only: SQLite takes no such shortcut. A real
database; the last test a real scheduler, metadata service and task processes."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2.errors
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_dirty
from sqlalchemy.orm.exc import StaleDataError

from stepwell.server import Database
from stepwell.v1 import common_pb2, metadata_pb2
from stepwell_scheduler.app import SchedulerApp, migrate
from stepwell_scheduler.engine import prepared
from stepwell_scheduler.engine.direct import DirectRows, _idle
from stepwell_scheduler.engine.fences import FENCES, FENCING, FenceFailed
from stepwell_scheduler.engine.leases import Leases
from stepwell_scheduler.engine.prepared import positional
from stepwell_scheduler.models import CANCELING, RUNNING, SUCCEEDED, RunRow, TaskRow
from stepwell_scheduler.settings import SchedulerSettings
from tests.integration.scheduler.pipelines import parameter_chain
from tests.integration.scheduler.rows import STAMP, seed
from tests.integration.scheduler.rows import task as _task
from tests.integration.scheduler.stack import Stack


@pytest.fixture
def database(fresh_pg_url: str) -> Iterator[Database]:
    db = Database(fresh_pg_url)
    migrate(db.engine)
    seed(db)
    yield db
    db.dispose()


@contextlib.contextmanager
def _fenced(db: Database) -> Iterator[Session]:
    with db.session() as s:
        s.info[FENCING] = True
        yield s


def _kept(db: Database) -> TaskRow:
    """The running row as the engine keeps it between transactions (detached, clean)."""
    with db.session() as s:
        return s.scalars(select(TaskRow).where(TaskRow.qualified_name == "kept")).one()


def _read_once(database: Database) -> tuple[DirectRows, TaskRow]:
    """Direct writes that have read (and keep) run "r1", and its running row as kept."""
    direct = DirectRows(database.engine)
    kept = _kept(database)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    return direct, kept


def _end_and_claim(s: Session, kept: TaskRow, suffix: str = "") -> TaskRow:
    """What a chain's step writes: the ended row (a copy of the kept one, unread) and the
    next task's row, claimed as it is inserted (returned)."""
    copy = s.merge(kept, load=False)
    copy.state, copy.outputs, copy.finished_at = SUCCEEDED, {"parameters": {"Output": 1}}, STAMP
    new = _task(f"next{suffix}", state=RUNNING, attempt=1, started_at=STAMP)
    s.add(new)
    return new


def _states(db: Database) -> dict[str, str]:
    with db.engine.connect() as conn:
        return {name: state for name, state in conn.execute(select(TaskRow.qualified_name, TaskRow.state))}


def _change_run(db: Database) -> None:
    """Another writer (a cancel, a retry, another scheduler) writes the run's row."""
    with db.session() as s:
        s.execute(update(RunRow).where(RunRow.run_id == "r1").values(cancel_requested=True))


@pytest.mark.parametrize("ahead", [False, True], ids=["ids-returned", "ids-ahead"])
def test_a_run_read_before_is_taken_unread_and_checked_by_the_write(database: Database, ahead: bool) -> None:
    """With ids taken ahead, the statement checks itself and commits in the same round
    trip; without, the COMMIT follows once the answer was checked."""
    direct = DirectRows(database.engine)
    if ahead:
        direct.refill_ids(database)
    kept = _kept(database)
    with _fenced(database) as s:
        assert direct.lock_run(s, "r1") is not None  # first: read, locked, kept
        assert not _idle(s)
    with _fenced(database) as s:
        run = direct.lock_run(s, "r1")
        assert run is not None and run.parameters == {"n": 3} and run.lease_owner == "me"
        assert _idle(s), "a run read before took a round trip"
        assert set(s.info[FENCES]) == {"r1"}
        new = _end_and_claim(s, kept)
        ids = list(direct._ids)
        assert direct.flush(s, commit=True)
        # Committed by the flush itself (BEGIN, the write, COMMIT): another connection sees it.
        assert _states(database) == {"kept": SUCCEEDED, "next": RUNNING}
        assert _idle(s) and not s.info.get(FENCES)
        assert (new.id == ids[0]) if ahead else (new.id and not ids)
        assert new.finished_at is None and new.not_before is None
    with database.engine.connect() as conn:  # the pool's connections are back to normal
        assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("commit", "ahead"), [(True, False), (True, True), (False, True)], ids=["begin-with-write", "whole", "in-transaction"]
)
def test_a_run_changed_since_fails_the_fence_and_nothing_is_written(
    database: Database, commit: bool, ahead: bool
) -> None:
    direct = DirectRows(database.engine)
    if ahead:
        direct.refill_ids(database)
    kept = _kept(database)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    _change_run(database)
    with pytest.raises(FenceFailed, match="r1"), _fenced(database) as s:
        taken = direct.lock_run(s, "r1")
        assert taken is not None and not taken.cancel_requested  # as read before the change
        _end_and_claim(s, kept)
        direct.flush(s, commit=commit)
    assert _states(database) == {"kept": RUNNING}  # neither the end nor the claim
    assert len(direct.versions) == 0  # forgotten: the next transaction reads it
    with _fenced(database) as s:
        fresh = direct.lock_run(s, "r1")
        assert fresh is not None and fresh.cancel_requested
        assert not _idle(s)
        _end_and_claim(s, kept)
        assert direct.flush(s, commit=commit)
    assert _states(database) == {"kept": SUCCEEDED, "next": RUNNING}


def test_a_whole_statement_refuses_a_stale_update_and_writes_nothing(database: Database) -> None:
    """The check inside the statement that commits with its write: an ended row that is
    gone (deleted meanwhile) fails it, and the claimed row is not written either."""
    direct = DirectRows(database.engine)
    direct.refill_ids(database)
    kept = _kept(database)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    with database.engine.begin() as conn:
        conn.execute(TaskRow.__table__.delete().where(TaskRow.__table__.c.qualified_name == "kept"))
    with pytest.raises(StaleDataError, match="matched no row"), _fenced(database) as s:
        direct.lock_run(s, "r1")
        _end_and_claim(s, kept)
        direct.flush(s, commit=True)
    assert _states(database) == {}
    with database.engine.connect() as conn:  # the connection went back clean
        assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
        assert conn.connection.dbapi_connection.get_transaction_status() == 0  # type: ignore[union-attr]


def test_a_statement_refused_by_its_own_check_stays_prepared(database: Database) -> None:
    """The one-round-trip statement's check refuses a changed run on the shape's first
    use: that use prepared it all the same, and the next one executes it, on the same
    connection, rather than leave a statement behind and prepare another."""
    direct = DirectRows(database.engine)
    direct.refill_ids(database)
    kept = _kept(database)
    connection = database.engine.connect()

    @contextlib.contextmanager
    def fenced() -> Iterator[Session]:
        with Session(bind=connection) as s, s.begin():
            s.info[FENCING] = True
            yield s

    try:
        with fenced() as s:
            direct.lock_run(s, "r1")
        _change_run(database)
        with pytest.raises(FenceFailed), fenced() as s:
            direct.lock_run(s, "r1")
            _end_and_claim(s, kept)
            direct.flush(s, commit=True)
        with fenced() as s:
            direct.lock_run(s, "r1")  # read again
        with fenced() as s:
            direct.lock_run(s, "r1")
            _end_and_claim(s, kept)
            assert direct.flush(s, commit=True)
        names = connection.execute(text("SELECT name FROM pg_prepared_statements")).scalars().all()
        connection.rollback()
    finally:
        connection.close()
    assert len(names) == 1, names
    assert _states(database) == {"kept": SUCCEEDED, "next": RUNNING}


def test_the_fence_holds_the_run_locked_until_the_commit(database: Database) -> None:
    direct, kept = _read_once(database)
    other = database.engine.connect()
    try:
        with _fenced(database) as s:
            direct.lock_run(s, "r1")
            _end_and_claim(s, kept)
            assert direct.flush(s)  # the commit is the session's, after this block
            with pytest.raises(OperationalError, match="could not obtain lock"):
                other.execute(text("SELECT 1 FROM sched_runs WHERE run_id = 'r1' FOR UPDATE NOWAIT"))
            other.rollback()
        assert other.execute(text("SELECT 1 FROM sched_runs WHERE run_id = 'r1' FOR UPDATE NOWAIT")).scalar() == 1
    finally:
        other.close()


@pytest.mark.parametrize("changed", [False, True], ids=["unchanged", "changed"])
def test_a_run_the_orm_writes_is_checked_before_its_flush(database: Database, changed: bool) -> None:
    direct = DirectRows(database.engine)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    if changed:
        _change_run(database)
    with contextlib.ExitStack() as stack:
        if changed:
            stack.enter_context(pytest.raises(FenceFailed))
        with _fenced(database) as s:
            run = direct.lock_run(s, "r1")
            assert run is not None
            run.state = CANCELING
            assert not direct.flush(s, commit=True)  # the ORM's to write, once checked
            assert not s.info.get(FENCES)
    with database.engine.connect() as conn:
        state = conn.execute(select(RunRow.state)).scalar()
    assert state == (RUNNING if changed else CANCELING)
    assert len(direct.versions) == 0  # written (or failed): its version is new


def test_lease_renewals_keep_the_run_taken_unread(database: Database) -> None:
    direct = DirectRows(database.engine)
    leases = Leases(database, "me", 30.0)
    leases.on_renewed = direct.renewed
    kept = _kept(database)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    leases.renew()  # the heartbeat: a new version of the run's row
    with database.engine.connect() as conn:
        stored = conn.execute(select(RunRow.lease_expires_at)).scalar()
    with _fenced(database) as s:
        run = direct.lock_run(s, "r1")
        assert run is not None and _idle(s)
        assert run.lease_expires_at == stored
        _end_and_claim(s, kept)
        assert direct.flush(s, commit=True)  # the fence holds: the version was told
    with _fenced(database) as s:  # a claim's renewal, inside a transaction
        run = direct.lock_run(s, "r1")
        direct.check_fences(s)
        assert leases.hold_on(s.connection(), ["r1"]) == {"r1"}
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
        assert _idle(s)
        direct.check_fences(s)  # raises if the renewal's version was not kept


def test_a_statement_is_prepared_once_per_connection(database: Database) -> None:
    direct = DirectRows(database.engine)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    with database.session() as s:
        for i in range(3):
            s.add(_task(f"a{i}"))
            s.add(_task(f"b{i}"))
            assert direct.flush(s)
        prepared = s.execute(text("SELECT name, statement FROM pg_prepared_statements")).all()
    assert len(prepared) == 1, prepared
    name, statement = prepared[0]
    assert name.startswith("stepwell_") and "INSERT INTO sched_tasks" in statement and "$1" in statement
    assert set(_states(database)) == {"kept", "a0", "a1", "a2", "b0", "b1", "b2"}


def test_a_renewal_keeps_the_whole_row_as_written(database: Database) -> None:
    """A writer the engine does not hear of (another process), then a renewal: the run
    kept is the renewal's row, not the old values under the new version."""
    direct = DirectRows(database.engine)
    leases = Leases(database, "me", 30.0)
    leases.on_renewed = direct.renewed
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
    with database.engine.begin() as conn:  # no ORM object, no event: as from elsewhere
        conn.execute(update(RunRow).where(RunRow.run_id == "r1").values(cancel_requested=True, options={"x": 1}))
    leases.renew()
    with _fenced(database) as s:
        run = direct.lock_run(s, "r1")
        assert _idle(s)
        assert run is not None and run.cancel_requested and run.options == {"x": 1}
        direct.check_fences(s)


def test_a_run_the_transaction_writes_early_does_not_fail_its_own_fence(database: Database) -> None:
    """A run ended by the advance (its row dirty), then a query that flushes it before
    the step's write: the fence is checked before that flush, not failed by it."""
    direct, kept = _read_once(database)
    with _fenced(database) as s:
        run = direct.lock_run(s, "r1")
        assert run is not None
        run.error = "set by the advance"
        s.scalars(select(TaskRow).where(TaskRow.qualified_name == "nothing")).all()  # autoflush
        assert not s.info.get(FENCES)  # checked (and locked) before that flush
        _end_and_claim(s, kept)
        assert direct.flush(s, commit=True)
    assert _states(database) == {"kept": SUCCEEDED, "next": RUNNING}


def test_a_row_flagged_with_nothing_changed_writes_nothing(database: Database) -> None:
    direct, kept = _read_once(database)
    with _fenced(database) as s:
        direct.lock_run(s, "r1")
        copy = s.merge(kept, load=False)
        flag_dirty(copy)
        assert direct.flush(s, commit=True)
    assert _states(database) == {"kept": RUNNING}


def test_prepared_statements_recover_from_failed_round_trips(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one connection: a round trip that deallocated everything and then failed, and
    statements gone from the server behind the engine's back (a pooler): later writes
    prepare again rather than fail for good."""
    monkeypatch.setattr(prepared, "LIMIT", 2)
    direct = DirectRows(database.engine)
    connection = database.engine.connect()

    @contextlib.contextmanager
    def transaction() -> Iterator[Session]:
        with Session(bind=connection) as s, s.begin():
            yield s

    def write(s: Session, names: list[str]) -> None:
        for name in names:
            s.add(_task(name))
        assert direct.flush(s)

    try:
        with transaction() as s:
            write(s, ["a0", "a1"])  # two shapes: the connection's limit
            write(s, ["b0", "b1", "b2"])
        with pytest.raises(psycopg2.errors.UniqueViolation), transaction() as s:
            write(s, ["a0", "c1", "c2", "c3"])  # a third shape: resets, then fails
        with transaction() as s:
            write(s, ["d0", "d1"])  # prepared again, not "does not exist"
        with pytest.raises(psycopg2.errors.InvalidSqlStatementName), transaction() as s:
            s.execute(text("DEALLOCATE ALL"))
            write(s, ["e0", "e1"])
        with transaction() as s:
            write(s, ["f0", "f1"])
    finally:
        connection.close()
    assert set(_states(database)) == {"kept", "a0", "a1", "b0", "b1", "b2", "d0", "d1", "f0", "f1"}


def test_prepared_statements_can_be_turned_off(
    database: Database, fresh_pg_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``STEPWELL_SCHEDULER_PREPARED_STATEMENTS=false`` (a pooler that drops them)."""
    monkeypatch.setenv("STEPWELL_SCHEDULER_PREPARED_STATEMENTS", "false")
    app = SchedulerApp(SchedulerSettings(home=tmp_path), database_url=fresh_pg_url)
    try:
        direct = app.engine.direct
        assert direct.prepare is False
        with database.session() as s:
            for i in range(2):
                s.add(_task(f"a{i}"))
                s.add(_task(f"b{i}"))
                assert direct.flush(s)
            assert s.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar() == 0
    finally:
        app.database.dispose()
    assert set(_states(database)) == {"kept", "a0", "a1", "b0", "b1"}


def test_named_parameters_become_positional() -> None:
    assert positional("UPDATE t SET a=%(x)s, b=%(y)s WHERE c = %(x)s AND d LIKE 'p%%' AND e = '%%(z)s'") == (
        "UPDATE t SET a=$1, b=$2 WHERE c = $1 AND d LIKE 'p%' AND e = '%(z)s'",
        ("x", "y"),
    )


@pytest.mark.parametrize("stack", ["postgres-s3"], indirect=True)
def test_a_chain_survives_writers_of_its_run(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before each of the first fenced writes, another writer changes the run's row: every
    such step is done again with the run read first, and nothing is lost or repeated."""
    engine = stack.scheduler.engine
    db = stack.scheduler.database
    real_flush = engine.direct.flush
    failed: list[str] = []
    real_check = engine.direct._check_fences

    def check(fences: dict[str, str], matched: int) -> None:
        if matched != len(fences):
            failed.extend(fences)
        real_check(fences, matched)

    def flush(s: Session, commit: bool = False) -> bool:
        fences = s.info.get(FENCES)
        if fences and len(failed) < 3:
            with db.session() as other:  # committed before the fenced write
                other.execute(update(RunRow).where(RunRow.run_id.in_(list(fences))).values(options=RunRow.options))
        return real_flush(s, commit=commit)

    monkeypatch.setattr(engine.direct, "flush", flush)
    monkeypatch.setattr(engine.direct, "_check_fences", check)
    renewing = threading.Event()

    def heartbeats() -> None:
        # Renewals as often as steps. One that commits between a step's taking the run
        # and its write fails that step's fence too (the new version is told right after
        # the commit): a step done twice, nothing else.
        while not renewing.wait(0.01):
            engine.leases.renew()

    beat = threading.Thread(target=heartbeats, daemon=True)
    names = ["a", "b", "c", "d", "e", "f"]
    run_id = uuid.uuid4().hex
    beat.start()
    try:
        stack.start(run_id, parameter_chain(names, pipeline="fences"), {"salt": "s"})
        status = stack.wait(run_id, timeout=60)
    finally:
        renewing.set()
        beat.join()
    assert status.state == common_pb2.SUCCEEDED, status.error
    assert set(failed) == {run_id} and len(failed) >= 3
    ctx = stack.metadata_stub.GetContext(metadata_pb2.GetContextRequest(type="system.PipelineRun", name=run_id))
    executions = stack.metadata_stub.GetExecutions(metadata_pb2.GetExecutionsRequest(context_id=ctx.id)).executions
    assert sorted(e.name for e in executions) == names  # one each
    with db.session() as s:
        rows = {r.qualified_name: r for r in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))}
    assert {name: row.state for name, row in rows.items()} == dict.fromkeys(names, SUCCEEDED)
    assert all(row.attempt == 1 for row in rows.values())
