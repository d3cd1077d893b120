"""Writing the engine's hot transaction without the ORM's unit of work.

The transaction that ends harvested task rows, advances their DAGs and claims the next
tasks (:meth:`~stepwell_scheduler.engine.driver.Engine._settle`) is on the path from a
task's exit to its downstream task's start. Through the ORM's flush, its UPDATE of the
ended row and INSERT of the next task's row cost 1-2 ms of CPU on a 2-vCPU VM, for what
SQLite itself does in under 0.1 ms: the unit of work's bookkeeping, not the statements.

:class:`DirectRows` writes the same rows with statements compiled once per dialect and
column set, run on the transaction's own DBAPI cursor, with each column type's own bind
and result processors, so that a value is stored (and read back) exactly as the ORM would
store it. The objects are then made persistent and clean in the session, as if the ORM
had flushed them: the rest of the engine goes on working with them unchanged, and the
commit finds nothing left to flush.

It writes task rows only (new ones and changed ones). A session holding anything else to
write (a changed run, a deleted object) is left to the ORM's flush, whole; so is any
session once :attr:`DirectRows.enabled` is off.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, insert, inspect, literal_column, select, update
from sqlalchemy.orm import Session, make_transient, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.schema import Column

from stepwell_scheduler.engine.fences import (
    CHECK,
    FENCES,
    FENCING,
    FenceFailed,
    RunVersions,
    fence_cte,
    fence_params,
)
from stepwell_scheduler.engine.prepared import PreparedStatements
from stepwell_scheduler.engine.together import WritesTogether, _bind, _check_updated
from stepwell_scheduler.models import RunRow, TaskRow

#: More rows than this are left to the ORM, which writes them in one statement.
BATCH = 16
#: libpq's PQTRANS_IDLE: a connection in no transaction.
_PQTRANS_IDLE = 0

_Processor = Callable[[Any], Any] | None
#: A compiled statement: its SQL, the order of its parameters (None: by name) and, per
#: parameter, its name and the column's bind processor.
_Compiled = tuple[str, tuple[str, ...] | None, list[tuple[str, _Processor]]]


#: A run, row-locked and read afresh (as ``Session.get(..., with_for_update=True)``), built
#: once: the ORM's way, for a run the session holds already.
RUN_FOR_UPDATE = (
    select(RunRow)
    .where(RunRow.run_id == bindparam("run_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


class DirectRows(WritesTogether):
    """Writes a session's new and changed task rows with precompiled statements."""

    def __init__(self, engine: Engine, enabled: bool = True) -> None:
        #: Off: every session is flushed by the ORM (for comparing the two).
        self.enabled = enabled
        #: Off: runs are read and locked first, never fenced, and a transaction's
        #: BEGIN and COMMIT are the driver's (for comparing the two).
        self.fencing = True
        self.dialect = engine.dialect
        self._table = cast(Table, TaskRow.__table__)
        self._columns: dict[str, Column[Any]] = {c.key: c for c in self._table.columns}
        self._binds: dict[str, _Processor] = {
            key: c.type.dialect_impl(self.dialect).bind_processor(self.dialect) for key, c in self._columns.items()
        }
        self._results: dict[str, _Processor] = {
            key: c.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
            for key, c in self._columns.items()
        }
        # The run's columns but its (deferred) spec: read whole, as the ORM reads it.
        runs = cast(Table, RunRow.__table__)
        self._runs_table = runs.name
        self._run_keys = tuple(c.key for c in runs.columns if c.key != "spec")
        self._run_results: list[_Processor] = [
            runs.c[k].type.dialect_impl(self.dialect).result_processor(self.dialect, None) for k in self._run_keys
        ]
        #: Several rows in one statement (:meth:`_write_together`): Postgres through
        #: psycopg2 (named parameters filled in by the driver, several statements in one
        #: round trip), where a statement may hold data-modifying WITH queries and a
        #: run's row version (``xmin``) can fence the write (see :mod:`.fences`).
        self._together = self.dialect.name == "postgresql" and self.dialect.driver == "psycopg2"
        self._together_sql: dict[Any, str] = {}
        #: Off: the statements of several rows go as text each time (for comparing).
        self.prepare = True
        self._prepared = PreparedStatements()
        columns: list[Any] = [runs.c[k] for k in self._run_keys]
        if self._together:
            columns.append(literal_column("xmin::text"))
        lock = select(*columns).where(runs.c.run_id == bindparam("run_id")).with_for_update()
        self._lock_run = self._compile(lock, ())
        self._updates: dict[tuple[str, ...], _Compiled] = {}
        self._inserts: dict[tuple[tuple[str, ...], tuple[str, ...]], _Compiled] = {}
        #: Each run's row as last read locked here, for transactions that fence it.
        self.versions = RunVersions()
        #: Ids for new task rows, taken ahead (:meth:`refill_ids`).
        self._ids: collections.deque[int] = collections.deque()

    def lock_run(self, s: Session, run_id: str) -> RunRow | None:
        """The run, row-locked and read afresh in the transaction ``s`` (None: no such
        run), as :data:`RUN_FOR_UPDATE` reads it; through the ORM when ``s`` holds the
        run already (it refreshes that object).

        In a transaction marked :data:`~.fences.FENCING` (Postgres), a run read here
        before is taken as it was then, unread and unlocked: its version is checked, and
        its row locked, by the statement that writes the transaction (:meth:`flush`)."""
        if not self.enabled or identity_key(RunRow, run_id) in s.identity_map:
            return s.execute(RUN_FOR_UPDATE, {"run_id": run_id}).scalar_one_or_none()
        if self._together and self.fencing and s.info.get(FENCING):
            kept = self.versions.get(run_id)
            if kept is not None:
                values, xmin = kept
                s.info.setdefault(FENCES, {})[run_id] = xmin
                s.info[CHECK] = self.check_fences
                return self._run_from(s, values)
        sql, order, _params = self._lock_run
        cursor = s.connection().connection.cursor()
        try:
            cursor.execute(sql, _ordered({"run_id": run_id}, order))
            found = cursor.fetchone()
        finally:
            cursor.close()
        if found is None:
            self.versions.forget(run_id)
            return None
        if self._together:
            values = tuple(found[:-1])
            self.versions.put(run_id, values, found[-1])
            return self._run_from(s, values)
        return self._run_from(s, tuple(found))

    def _run_from(self, s: Session, found: tuple[Any, ...]) -> RunRow:
        # Filled in as an ORM load fills an instance in: straight into its dict, no
        # attribute events (a constructor's would be most of this method's time).
        run = _new_run()
        vars(run).update(zip(self._run_keys, (
            proc(value) if proc is not None else value
            for proc, value in zip(self._run_results, found, strict=True)
        ), strict=True))
        # Persistent and clean, as if loaded; the spec stays unloaded until used.
        make_transient_to_detached(run)
        s.add(run)
        return run

    def renewed(self, rows: list[dict[str, Any]]) -> None:
        """A lease renewal wrote these runs: their rows as written (every column but the
        spec, and ``xmin``). Runs kept are replaced whole, runs not kept are not added."""
        if self._together:
            self.versions.renewed((row["run_id"], tuple(row[k] for k in self._run_keys), row["xmin"]) for row in rows)

    def check_fences(self, s: Session) -> None:
        """Checks (and row-locks) the runs ``s`` took unread, now, in its transaction:
        before a statement that writes one of them, or what the ORM is left to flush.
        Raises :class:`~.fences.FenceFailed` when one has changed."""
        fences = s.info.pop(FENCES, None)
        if not fences:
            return
        sql = f"WITH {fence_cte(self._runs_table, len(fences))} SELECT count(*) FROM fence"
        cursor: Any = s.connection().connection.cursor()
        try:
            cursor.execute(sql, fence_params(fences))
            matched = cursor.fetchone()[0]
        finally:
            cursor.close()
        self._check_fences(fences, matched)

    def _check_fences(self, fences: dict[str, str], matched: int | None) -> None:
        """Raises :class:`~.fences.FenceFailed` unless all ``fences`` held (``matched``
        of them did; None: not all, the statement said)."""
        if matched != len(fences):
            for run_id in fences:
                self.versions.forget(run_id)
            raise FenceFailed(f"run(s) {', '.join(sorted(fences))} changed since read")

    def flush(self, s: Session, commit: bool = False) -> bool:
        """Writes what ``s`` holds to write when it is a few task rows: changed rows first
        (by id), then new rows in the order they were added. Returns False, having
        written nothing, when the ORM's flush must do it (a large batch too: the ORM
        sends it as one statement). Runs the transaction took unread (see
        :mod:`.fences`) are checked by the same statement, or before the ORM's flush.

        ``commit``: the commit is all that follows in the transaction. On Postgres, when
        nothing has been sent in it yet, its ``BEGIN`` goes in one round trip with the
        write, and its ``COMMIT`` too when the new rows have ids taken ahead (else right
        after): the session's own commit then has nothing to do. One round trip (or two)
        instead of three."""
        fences: dict[str, str] = s.info.get(FENCES) or {}
        if not self.enabled or s.deleted:
            self.check_fences(s)
            return False
        new, dirty = list(s.new), list(s.dirty)
        if not new and not dirty:
            if fences and _idle(s):
                s.info.pop(FENCES)  # nothing was sent, nothing is written: nothing to check
            self.check_fences(s)
            return True
        if len(new) + len(dirty) > BATCH or any(type(o) is not TaskRow for o in (*new, *dirty)):
            self.check_fences(s)
            return False
        changes: list[tuple[TaskRow, tuple[str, ...]]] = []
        for row in sorted(dirty, key=lambda o: o.id):
            keys = tuple(sorted(k for k in inspect(row).committed_state if k != "id"))
            if any(k not in vars(row) for k in keys):
                self.check_fences(s)
                return False  # changed, then expired: the ORM knows what to do
            changes.append((row, keys))
        added = sorted(new, key=lambda o: inspect(o).insert_order)
        changes = [(row, keys) for row, keys in changes if keys]
        if not changes and not added:  # flagged, nothing changed: nothing to write
            if fences and _idle(s):
                s.info.pop(FENCES)
            self.check_fences(s)
            for row in dirty:
                _committed(s, row)
            return True
        begin = commit and self._together and self.fencing and _idle(s)
        connection = s.connection().connection
        cursor = connection.cursor()
        dbapi_connection: Any = connection.dbapi_connection
        try:
            if begin:
                # Transaction control by hand for this one statement, as SQLAlchemy's own
                # psycopg2 ping does: the driver would send its BEGIN alone.
                dbapi_connection.autocommit = True
            try:
                committed = False
                if self._together and (fences or begin or len(changes) + len(added) > 1):
                    s.info.pop(FENCES, None)
                    committed = self._write_together(cursor, changes, added, fences, begin, connection.info)
                else:
                    for row, keys in changes:
                        self._update_row(cursor, row, keys)
                    for row in added:
                        self._insert_row(cursor, row)
                if begin and not committed:
                    cursor.execute("COMMIT")
            except BaseException:
                if begin and not dbapi_connection.closed:
                    cursor.execute("ROLLBACK")
                raise
        finally:
            cursor.close()
            if begin and not dbapi_connection.closed:
                if dbapi_connection.get_transaction_status() != _PQTRANS_IDLE:
                    # The ROLLBACK failed on a live connection: the driver, which never
                    # saw the BEGIN, would hand the open transaction to the next user.
                    connection.invalidate()
                else:
                    dbapi_connection.autocommit = False
        # As the ORM leaves them after a flush: persistent, their values committed. (Unlike
        # the ORM's, a rollback after this does not turn the new rows back to transient:
        # the engine forgets the views holding them when its transaction fails.)
        for row in dirty:
            _committed(s, row)
        for row in added:
            s.expunge(row)
            make_transient_to_detached(row)
            s.add(row)
        return True

    def _update_row(self, cursor: Any, row: TaskRow, keys: tuple[str, ...]) -> None:
        sql, order, _params = self._update(keys)
        cursor.execute(sql, _ordered(self._update_values(row, keys), order))
        _check_updated(row, cursor.rowcount)

    def _update_values(self, row: TaskRow, keys: tuple[str, ...]) -> dict[str, Any]:
        values = vars(row)
        return {"row_id": row.id, **{name: _bind(proc, values.get(name[2:])) for name, proc in self._update(keys)[2]}}

    def _insert_row(self, cursor: Any, row: TaskRow) -> None:
        given, returned = self._insert_columns(row)
        sql, order, params = self._insert(tuple(given), returned)
        bound = {name: _bind(proc, given[name[2:]]) for name, proc in params}
        cursor.execute(sql, _ordered(bound, order))
        self._inserted(row, given, returned, cursor.fetchone())

    def _insert_columns(self, row: TaskRow, complete: bool = False) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The values an INSERT of ``row`` gives (with the Python-side defaults of the
        columns it leaves unset), and the columns it returns (server defaults, the id).
        ``complete``: nullable columns with no default are given as NULL, not returned."""
        values = vars(row)
        given: dict[str, Any] = {}
        for key, column in self._columns.items():
            if key == "id" and values.get("id") is None:
                continue
            if key in values:
                given[key] = values[key]
            elif column.default is not None:
                given[key] = _default(column)
            elif complete and column.nullable and column.server_default is None:
                given[key] = None
            # else: a server default, returned by the INSERT
        return given, tuple(k for k in self._columns if k not in given)

    def _inserted(self, row: TaskRow, given: dict[str, Any], returned: tuple[str, ...], found: Any) -> None:
        if found is None:
            raise StaleDataError(f"INSERT of task {row.qualified_name!r} returned no row")
        values = vars(row)
        for key, value in given.items():
            if key not in values:
                set_committed_value(row, key, value)
        for key, value in zip(returned, found, strict=True):
            proc = self._results[key]
            set_committed_value(row, key, proc(value) if proc is not None else value)

    def _update(self, keys: tuple[str, ...]) -> _Compiled:
        found = self._updates.get(keys)
        if found is None:
            stmt = (
                update(self._table)
                .where(self._table.c.id == bindparam("row_id"))
                .values({k: bindparam(f"v_{k}") for k in keys})
            )
            found = self._updates[keys] = self._compile(stmt, keys)
        return found

    def _insert(self, keys: tuple[str, ...], returned: tuple[str, ...]) -> _Compiled:
        found = self._inserts.get((keys, returned))
        if found is None:
            stmt = insert(self._table).values({k: bindparam(f"v_{k}") for k in keys})
            if returned:
                stmt = stmt.returning(*(self._table.c[k] for k in returned))
            found = self._inserts[(keys, returned)] = self._compile(stmt, keys)
        return found

    def _compile(self, stmt: Any, keys: Iterable[str]) -> _Compiled:
        compiled = stmt.compile(dialect=self.dialect)
        order = tuple(compiled.positiontup) if compiled.positional else None
        return compiled.string, order, [(f"v_{k}", self._binds[k]) for k in keys]


def _idle(s: Session) -> bool:
    """Whether nothing has been sent in the transaction ``s`` yet (Postgres, psycopg2)."""
    dbapi_connection: Any = s.connection().connection.dbapi_connection
    return not dbapi_connection.autocommit and dbapi_connection.get_transaction_status() == _PQTRANS_IDLE


def _committed(s: Session, row: TaskRow) -> None:
    """Marks a persistent row's values as stored, as the ORM does after its flush
    (``InstanceState._commit_all``); through public calls when that is not there."""
    state = inspect(row)
    commit_all = getattr(state, "_commit_all", None)
    if commit_all is not None:
        commit_all(state.dict, s.identity_map)
        return
    s.expunge(row)
    make_transient(row)
    make_transient_to_detached(row)
    s.add(row)


def _new_run() -> RunRow:
    """An empty RunRow with its ORM state, as a query makes one before filling it in."""
    run: RunRow = manager_of_class(RunRow).new_instance()
    return run


def _ordered(bound: dict[str, Any], order: Sequence[str] | None) -> Any:
    return bound if order is None else tuple(bound[name] for name in order)


def _default(column: Column[Any]) -> Any:
    """A column's Python-side default, as the ORM would fill it in."""
    default: Any = column.default
    if default.is_callable:
        return default.arg(None)
    return default.arg
