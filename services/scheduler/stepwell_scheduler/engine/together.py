"""Several task rows in one statement, on Postgres (a mixin of ``DirectRows``).

A step's UPDATEs and INSERTs go as data-modifying ``WITH`` queries of one statement: one
round trip instead of one each. With the runs it took unread, the statement holds their
fences (see :mod:`.fences`); opening the transaction, its ``BEGIN`` goes with it; and
when the new rows have ids taken ahead (:meth:`WritesTogether.refill_ids`), so that
nothing needs reading back, the statement checks itself and its ``COMMIT`` goes with it
too: the whole transaction in one round trip. The statement is prepared once per
connection (:mod:`.prepared`).
"""

from __future__ import annotations

import collections
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.orm.exc import StaleDataError

from stepwell_scheduler.engine.fences import fence_cte, fence_params
from stepwell_scheduler.engine.prepared import PreparedStatements
from stepwell_scheduler.models import TaskRow

if TYPE_CHECKING:
    from stepwell_scheduler.engine.direct import _Compiled

#: At most this many statements of several rows (one per shape of flush) are kept.
_SHAPES = 256
#: Ids of new task rows taken from the sequence at a time (see ``refill_ids``).
_ID_BLOCK = 64
#: What a statement's own check says when it refuses (SQLSTATE 22P02, a text cast to a
#: number: see ``WritesTogether._compose``).
_INVALID_TEXT = "22P02"
_FENCE_FAILED = "stepwell: a fenced run changed"
_STALE = "stepwell: an UPDATE matched no row"


class WritesTogether:
    """The multi-row statement of ``DirectRows`` (Postgres through psycopg2)."""

    _table: Table
    _runs_table: str
    _together: bool
    _together_sql: dict[Any, str]
    _prepared: PreparedStatements
    _ids: collections.deque[int]
    fencing: bool
    prepare: bool

    if TYPE_CHECKING:  # provided by DirectRows

        def _insert_columns(self, row: TaskRow, complete: bool = False) -> tuple[dict[str, Any], tuple[str, ...]]: ...
        def _inserted(self, row: TaskRow, given: dict[str, Any], returned: tuple[str, ...], found: Any) -> None: ...
        def _update_values(self, row: TaskRow, keys: tuple[str, ...]) -> dict[str, Any]: ...
        def _update(self, keys: tuple[str, ...]) -> _Compiled: ...
        def _insert(self, keys: tuple[str, ...], returned: tuple[str, ...]) -> _Compiled: ...
        def _check_fences(self, fences: dict[str, str], matched: int | None) -> None: ...

    def _write_together(
        self,
        cursor: Any,
        changes: list[tuple[TaskRow, tuple[str, ...]]],
        added: list[TaskRow],
        fences: dict[str, str] | None = None,
        begin: bool = False,
        info: dict[str, Any] | None = None,
    ) -> bool:
        """Postgres: every UPDATE and INSERT of the flush in one statement (data-modifying
        ``WITH`` queries), one round trip instead of one each. The statement returns, in
        one row, how many runs of ``fences`` are unchanged (when there are any), how many
        rows each UPDATE matched and what each INSERT returned. ``begin``: the statement
        opens the transaction too, and when the new rows can have their ids from
        :meth:`refill_ids` and need nothing returned, the statement checks the counts
        itself and the COMMIT goes in the same round trip: returns True then (committed).
        With the connection's ``info``, the statement is prepared on it (see
        :mod:`.prepared`)."""
        fences = fences or {}
        whole = begin and len(added) <= len(self._ids)
        inserts = [(row, *self._insert_columns(row, complete=whole)) for row in added]
        if whole and any(not (row.id is None and returned == ("id",)) for row, _given, returned in inserts):
            whole = False  # a server default to read back: the answer is needed first
            inserts = [(row, *self._insert_columns(row)) for row in added]
        if whole:
            for row, given, _returned in inserts:
                row.id = given["id"] = self._ids.popleft()
            inserts = [(row, given, ()) for row, given, _returned in inserts]
        shape = (
            tuple(keys for _row, keys in changes),
            tuple((tuple(given), returned) for _row, given, returned in inserts),
            len(fences),
            whole,
        )
        sql = self._together_sql.get(shape)
        if sql is None:
            if len(self._together_sql) >= _SHAPES:
                self._together_sql.clear()  # shapes seldom vary; a bound all the same
            sql = self._together_sql[shape] = self._compose(shape)
        bound: dict[str, Any] = fence_params(fences)
        for i, (row, keys) in enumerate(changes):
            bound.update((f"u{i}_{name}", value) for name, value in self._update_values(row, keys).items())
        for j, (_row, given, returned) in enumerate(inserts):
            params = self._insert(tuple(given), returned)[2]
            bound.update((f"i{j}_{name}", _bind(proc, given[name[2:]])) for name, proc in params)
        use = self._prepared.use(info, shape, sql) if self.prepare and info is not None else None
        if use is not None:
            sql = use.text
        if whole:
            sql = f"BEGIN; {sql}; COMMIT"
        elif begin:
            sql = f"BEGIN; {sql}"
        try:
            cursor.execute(sql, bound)
        except Exception as err:
            refused = _refused_by_check(err) if whole else ""
            if use is not None and refused:
                use.succeeded()  # prepared, and ran: its own check refused
            elif use is not None:
                use.failed(err)
            if refused == _FENCE_FAILED:
                self._check_fences(fences, None)
            if refused == _STALE:
                raise StaleDataError("an UPDATE of a task row matched no row") from err
            raise
        if use is not None:
            use.succeeded()
        if whole:
            for row, given, returned in inserts:
                self._inserted(row, given, returned, ())
            return True
        found = cursor.fetchone()
        if found is None:  # an INSERT returned no row: the cross join of their results is empty
            raise StaleDataError(f"INSERT of {len(inserts)} task rows returned no row")
        if fences:
            self._check_fences(fences, found[0])
            found = found[1:]
        for (row, _keys), count in zip(changes, found, strict=False):
            _check_updated(row, count)
        at = len(changes)
        for row, given, returned in inserts:
            self._inserted(row, given, returned, found[at : at + len(returned)])
            at += len(returned)
        return False

    def refill_ids(self, db: Any) -> None:
        """Takes ids for new task rows from the table's sequence, ahead (Postgres, when
        fewer than a block are left): new rows that have them need nothing read back, and
        their transaction commits in the same round trip as its write. Off the path from
        an exit to a start: the engine calls it at the end of a step."""
        if not (self._together and self.fencing) or len(self._ids) >= _ID_BLOCK // 2:
            return
        with db.autocommit() as connection:
            found = connection.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{self._table.name}', 'id')) "
                f"FROM generate_series(1, {_ID_BLOCK})"
            )
            self._ids.extend(int(value) for (value,) in found)

    def _compose(self, shape: tuple[Any, ...]) -> str:
        """The statement of :meth:`_write_together` for one shape of flush: its UPDATEs'
        and INSERTs' own compiled SQL, their parameters renamed apart. A *whole* one
        returns nothing: it fails, with an error naming what, when a fence or an UPDATE's
        count is not what it must be (the cast of a text that is no number, at run time:
        the transaction it is in then cannot commit)."""
        updates, inserts, fenced, whole = shape
        parts: list[str] = [fence_cte(self._runs_table, fenced)] if fenced else []
        for i, keys in enumerate(updates):
            parts.append(f"u{i} AS ({_renamed(self._update(keys)[0], f'u{i}_')} RETURNING 1)")
        for j, (keys, returned) in enumerate(inserts):
            parts.append(f"i{j} AS ({_renamed(self._insert(keys, returned)[0], f'i{j}_')})")
        fence = [f"(SELECT count(*) FROM fence) = {fenced}"] if fenced else []
        counts = [f"(SELECT count(*) FROM u{i}) = 1" for i in range(len(updates))]
        if whole:
            check = f"WHEN NOT ({' AND '.join(fence)}) THEN '{_FENCE_FAILED}' " if fence else ""
            check += f"WHEN NOT ({' AND '.join(counts)}) THEN '{_STALE}' " if counts else ""
            select = f"SELECT CAST(CASE {check}ELSE '0' END AS integer)" if check else "SELECT 0"
            return f"WITH {', '.join(parts)} {select}"
        columns = ["(SELECT count(*) FROM fence)"] if fenced else []
        columns += [f"(SELECT count(*) FROM u{i})" for i in range(len(updates))]
        rows = [f"i{j}.*" for j in range(len(inserts))]
        source = f" FROM {', '.join(f'i{j}' for j in range(len(inserts)))}" if inserts else ""
        return f"WITH {', '.join(parts)} SELECT {', '.join(columns + rows)}{source}"


def _renamed(sql: str, prefix: str) -> str:
    """``sql`` with its named parameters (``%(name)s``) renamed ``%(<prefix>name)s``."""
    return re.sub(r"%\((\w+)\)s", lambda m: f"%({prefix}{m.group(1)})s", sql)


def _check_updated(row: TaskRow, count: int) -> None:
    if count != 1:
        raise StaleDataError(f"UPDATE of task row {row.id} matched {count} rows, not 1")


def _bind(proc: Any, value: Any) -> Any:
    return proc(value) if proc is not None else value


def _refused_by_check(err: Exception) -> str:
    """Which of a statement's own checks (see ``WritesTogether._compose``) refused it, if
    that is why it failed ("" otherwise)."""
    if str(getattr(err, "pgcode", "")) != _INVALID_TEXT:
        return ""
    diag = getattr(err, "diag", None)
    message = str(getattr(diag, "message_primary", "") or "")
    for check in (_FENCE_FAILED, _STALE):
        if f'"{check}"' in message:  # invalid input syntax for type integer: "<check>"
            return check
    return ""
