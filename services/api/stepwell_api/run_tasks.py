"""The task rows and status columns of runs, as status reports write them and watchers
read them (``RunRepository`` mixes this in; it runs inside the caller's transaction)."""

from __future__ import annotations

import json
import typing
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Insert,
    Table,
    Text,
    cast,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from stepwell_api.domain import Outputs, RunState, TaskDetail
from stepwell_api.models import RunRow, RunTaskRow


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones, stored as UTC)."""
    if value is None:
        return None
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class RunTasksMixin:
    """Status and task-row methods of :class:`~stepwell_api.repository.RunRepository`."""

    session: Session

    # -- status -------------------------------------------------------------------------

    def lock_status(self, run_id: str) -> RunStatusRow | None:
        """The run's status columns, its row locked as :meth:`lock_row` locks it.

        Only what a status report needs: the spec and parameters (JSON, possibly large)
        are not read and parsed on every report."""
        self._lock_sqlite(run_id)
        runs = _runs_table()
        row = self.session.execute(
            select(*(runs.c[name] for name in RunStatusRow._fields))
            .where(runs.c.run_id == run_id)
            .with_for_update()
        ).one_or_none()
        return None if row is None else RunStatusRow(*row)

    def update_status(self, run_id: str, values: dict[str, Any]) -> None:
        """Writes ``values`` to the run's row (one UPDATE)."""
        runs = _runs_table()
        self.session.execute(update(runs).where(runs.c.run_id == run_id).values(**values))

    # -- tasks --------------------------------------------------------------------------

    def tasks_of(self, run_ids: Sequence[str]) -> dict[str, list[TaskDetail]]:
        """The tasks of every run in ``run_ids``, in one query, in report order."""
        grouped: dict[str, list[TaskDetail]] = defaultdict(list)
        if not run_ids:
            return grouped
        tasks = _tasks_table()
        query = (
            select(tasks.c.run_id, *_TASK_READ)
            .where(tasks.c.run_id.in_(list(run_ids)))
            .order_by(tasks.c.run_id, tasks.c.position)
        )
        for row in self.session.execute(query).all():
            grouped[row[0]].append(_task_from_row(row[1:]))
        return grouped

    def tasks_after(self, run_id: str, version: int) -> list[TaskDetail]:
        """The run's tasks written after status version ``version``, in report order (an
        index range on ``(run_id, version)``: what changed, not the whole run)."""
        tasks = _tasks_table()
        query = (
            select(*_TASK_READ)
            .where(tasks.c.run_id == run_id, tasks.c.version > version)
            .order_by(tasks.c.position)
        )
        return [_task_from_row(row) for row in self.session.execute(query).all()]

    def children_of(self, run_id: str, task_ids: Sequence[str]) -> dict[str, list[str]]:
        """The child task ids of each of ``task_ids`` (those with children), in report order."""
        found: dict[str, list[tuple[int, str]]] = {}
        tasks = _tasks_table()
        for chunk in _chunks(list(task_ids)):
            query = select(tasks.c.parent_task_id, tasks.c.position, tasks.c.task_id).where(
                tasks.c.run_id == run_id, tasks.c.parent_task_id.in_(chunk)
            )
            for parent, position, task_id in self.session.execute(query):
                found.setdefault(parent, []).append((position, task_id))
        return {parent: [task_id for _, task_id in sorted(pairs)] for parent, pairs in found.items()}

    def write_tasks(self, run_id: str, reported: Sequence[TaskDetail], version: int, partial: bool) -> bool:
        """Applies a status report's tasks, stamping every row it writes with ``version``.

        Partial: the reported tasks are upserted and every other row is kept; new tasks
        are placed after the existing ones, in report order. Full: the run's rows are
        made equal to ``reported`` (positions follow the report) and rows not reported
        are deleted; only rows whose content changed are written, so they alone get the
        new version. Either way a new task's parent row is stamped too (its KFP-shaped
        detail lists its children). True when rows were deleted.

        Few statements whatever the number of tasks: one read (only the reported ids
        when partial), one upsert batch for everything written, one DELETE, one UPDATE of
        parents. The run's row must be locked by the caller (:meth:`lock_status`).
        """
        tasks = _tasks_table()
        first: dict[str, int] = {}
        for index, task in enumerate(reported):
            first.setdefault(task.task_id, index)  # a repeated id: its first entry counts
        unique = [reported[i] for i in first.values()] if len(first) != len(reported) else list(reported)
        if partial:
            existing: set[str] = set()
            for chunk in _chunks(list(first)):
                existing.update(self.session.scalars(
                    select(tasks.c.task_id).where(tasks.c.run_id == run_id, tasks.c.task_id.in_(chunk))
                ))
            new = [t for t in unique if t.task_id not in existing]
            placed: dict[str, int] = {}
            if new:
                last = self.session.scalar(select(func.max(tasks.c.position)).where(tasks.c.run_id == run_id))
                start = 0 if last is None else int(last) + 1
                placed = {t.task_id: start + offset for offset, t in enumerate(new)}
            # An existing row keeps its position: the upsert leaves it out of its SET.
            written = [_task_values(run_id, t, placed.get(t.task_id, 0), version) for t in unique]
            removed: list[str] = []
        else:
            query = select(*_TASK_COMPARE).where(tasks.c.run_id == run_id)
            naive = self._naive_times()
            current = {
                row[0]: (row[1:] if not naive else tuple(as_utc(v) if isinstance(v, datetime) else v for v in row[1:]))
                for row in self.session.execute(query).all()
            }
            written, new = [], []
            for task in unique:
                values = _task_values(run_id, task, first[task.task_id], version)
                before = current.get(task.task_id)
                if before is None:
                    new.append(task)
                    written.append(values)
                elif before != tuple(values[name] for name in _COMPARED):
                    written.append(values)
            removed = [task_id for task_id in current if task_id not in first]
        if written:
            self.session.execute(self._upsert(with_position=not partial), written)
        for chunk in _chunks(removed):
            self.session.execute(delete(tasks).where(tasks.c.run_id == run_id, tasks.c.task_id.in_(chunk)))
        parents = {t.parent_task_id for t in new if t.parent_task_id} - {v["task_id"] for v in written}
        for chunk in _chunks(sorted(parents)):
            self.session.execute(
                update(tasks)
                .where(tasks.c.run_id == run_id, tasks.c.task_id.in_(chunk), tasks.c.version < version)
                .values(version=version)
            )
        return bool(removed)

    def _upsert(self, with_position: bool) -> Insert:
        """``INSERT ... ON CONFLICT (run_id, task_id) DO UPDATE`` of every written column
        (``position`` only when ``with_position``): new and changed rows in one batch,
        where separate UPDATEs would cost a round trip per row."""
        dialect = self.session.get_bind().dialect.name
        key = (dialect, with_position)
        statement = _upserts.get(key)
        if statement is None:
            tasks = _tasks_table()
            kept = {"run_id", "task_id"} | (set() if with_position else {"position"})
            keys = [tasks.c.run_id, tasks.c.task_id]
            if dialect == "postgresql":
                pg = postgresql.insert(tasks)
                statement = pg.on_conflict_do_update(
                    index_elements=keys, set_={name: pg.excluded[name] for name in _WRITTEN if name not in kept}
                )
            else:
                lite = sqlite.insert(tasks)
                statement = lite.on_conflict_do_update(
                    index_elements=keys, set_={name: lite.excluded[name] for name in _WRITTEN if name not in kept}
                )
            _upserts[key] = statement
        return statement

    def _naive_times(self) -> bool:
        """True when the database hands back naive datetimes (SQLite; stored as UTC)."""
        return self.session.get_bind().dialect.name == "sqlite"

    def _lock_sqlite(self, run_id: str) -> None:
        # SQLite has no row locks: a no-op UPDATE takes the database's write lock first.
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(
                update(RunRow).where(RunRow.run_id == run_id).values(run_id=RunRow.run_id),
                execution_options={"synchronize_session": False},
            )



class RunStatusRow(typing.NamedTuple):
    """The columns of a run's row a status report reads (:meth:`RunRepository.lock_status`)."""

    state: str
    status_updated_at: datetime | None
    finished_at: datetime | None
    handed_at: datetime | None
    status_version: int


#: Every column a task write sets.
_WRITTEN = (
    "run_id",
    "task_id",
    "position",
    "display_name",
    "state",
    "create_time",
    "start_time",
    "end_time",
    "execution_id",
    "outputs",
    "error",
    "log_tail",
    "log_uri",
    "parent_task_id",
    "kind",
    "cached",
    "version",
)
#: What a full report compares to decide whether a row changed.
_COMPARED = tuple(name for name in _WRITTEN if name not in ("run_id", "task_id", "version"))
#: A task detail's columns, in :func:`_task_from_row`'s order.
_READ = tuple(name for name in _WRITTEN if name not in ("run_id", "position", "version"))
_upserts: dict[tuple[str, bool], Insert] = {}
#: SQLite caps the variables of one statement; Postgres does not need the chunks.
_CHUNK = 500


def _runs_table() -> Table:
    return typing.cast(Table, RunRow.__table__)


def _tasks_table() -> Table:
    return typing.cast(Table, RunTaskRow.__table__)


#: Outputs are read as their stored text: most tasks have none, and parsing JSON for
#: every row of a large run is a good part of reading it.
_TASK_READ = tuple(
    cast(_tasks_table().c[name], Text) if name == "outputs" else _tasks_table().c[name] for name in _READ
)
#: The stored text of empty outputs (``Outputs().to_json()`` as the JSON type writes it).
_EMPTY_OUTPUTS = frozenset({"", "{}", json.dumps(Outputs().to_json())})
_TASK_COMPARE = (_tasks_table().c.task_id, *(_tasks_table().c[name] for name in _COMPARED))


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _task_values(run_id: str, task: TaskDetail, position: int, version: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "task_id": task.task_id,
        "position": position,
        "display_name": task.display_name,
        "state": task.state.value,
        "create_time": task.create_time,
        "start_time": task.start_time,
        "end_time": task.end_time,
        "execution_id": task.execution_id,
        "outputs": task.outputs.to_json(),
        "error": task.error,
        "log_tail": task.log_tail,
        "log_uri": task.log_uri,
        "parent_task_id": task.parent_task_id,
        "kind": task.kind,
        "cached": task.cached,
        "version": version,
    }


_STATES = {state.value: state for state in RunState}


def _task_from_row(row: Sequence[Any]) -> TaskDetail:
    """A row of :data:`_TASK_READ` columns as a domain task detail (plain tuples rather
    than ORM entities: GetRun of a large run reads thousands of them)."""
    (task_id, display_name, state, create_time, start_time, end_time, execution_id, outputs,
     error, log_tail, log_uri, parent_task_id, kind, cached) = row
    return TaskDetail(
        task_id=task_id,
        display_name=display_name,
        state=_STATES.get(state, RunState.RUNTIME_STATE_UNSPECIFIED),
        create_time=as_utc(create_time),
        start_time=as_utc(start_time),
        end_time=as_utc(end_time),
        execution_id=int(execution_id or 0),
        outputs=Outputs() if outputs in _EMPTY_OUTPUTS else Outputs.from_json(json.loads(outputs)),
        error=error,
        log_tail=log_tail,
        log_uri=log_uri,
        parent_task_id=parent_task_id,
        kind=kind,
        cached=bool(cached),
    )
