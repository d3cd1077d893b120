"""Turning run and task rows into ``RunStatus`` / ``TaskDetail`` protos (the edge of the service)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from sqlalchemy import literal_column, select
from sqlalchemy.orm import Session

from stepwell.v1 import common_pb2, run_pb2, scheduler_pb2
from stepwell_scheduler.models import FINAL_STATES, RUNNING, RunRow, TaskRow


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    aware = utc(value)
    if aware is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(aware)
    return stamp


def outputs_proto(outputs: Mapping[str, Any] | None) -> common_pb2.Outputs:
    """``{"parameters", "artifacts"}`` as an ``Outputs`` message."""
    outputs = outputs or {}
    message = common_pb2.Outputs()
    params = outputs.get("parameters") or {}
    if params:
        json_format.ParseDict(dict(params), message.parameters)
    for name, records in (outputs.get("artifacts") or {}).items():
        entry = message.artifacts[name]
        for record in records:
            ref = entry.artifacts.add(
                uri=str(record.get("uri", "")),
                artifact_id=int(record.get("artifact_id") or 0),
                schema_title=str(record.get("schema_title") or ""),
                size_bytes=int(record.get("size") or 0),
                sha256=str(record.get("sha256") or ""),
            )
            metadata = record.get("metadata") or {}
            if metadata:
                ref.metadata.CopyFrom(_struct(metadata))
    return message


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(value), struct)
    return struct


@dataclass(frozen=True)
class TaskEntry:
    """One task row as last read.

    ``signature`` holds the row's values that its ``TaskDetail`` is built from (and its
    row id): equal signatures mean an equal detail, so it is what a reader remembers to
    tell later whether the task changed. ``detail`` is shared between snapshots and must
    not be modified.
    """

    task_id: str
    signature: tuple[Any, ...]
    order: tuple[datetime, int]
    cached: bool
    detail: run_pb2.TaskDetail
    #: What the cheap per-row probe returned when the row was read (see ``_probe_columns``).
    probe: Any = None


@dataclass(frozen=True)
class RunSnapshot:
    """A run's state and every task of it, as read in one :meth:`StatusCache.snapshot`."""

    run_id: str
    state: str
    error: str
    outputs: Mapping[str, Any]
    #: By task id (qualified name).
    tasks: Mapping[str, TaskEntry]

    @property
    def final(self) -> bool:
        """True when the run is in a final state."""
        return self.state in FINAL_STATES

    def details(self, task_ids: Iterable[str] | None = None) -> list[run_pb2.TaskDetail]:
        """The details of ``task_ids`` (all tasks when None), in the order of the status."""
        entries = self.tasks.values() if task_ids is None else [self.tasks[t] for t in task_ids]
        return [e.detail for e in sorted(entries, key=_order)]

    def outputs_proto(self) -> common_pb2.Outputs:
        """The run's outputs as an ``Outputs`` message."""
        return outputs_proto(self.outputs)

    def status(self) -> scheduler_pb2.RunStatus:
        """The whole run as a ``RunStatus``: every task, ordered by when it became ready."""
        ordered = sorted(self.tasks.values(), key=_order)
        status = scheduler_pb2.RunStatus(
            run_id=self.run_id,
            state=self.state,  # type: ignore[arg-type]
            error=self.error,
            task_details=[e.detail for e in ordered],
            cached_task_ids=[e.task_id for e in ordered if e.cached],
        )
        if self.outputs:
            status.outputs.CopyFrom(self.outputs_proto())
        return status


def _order(entry: TaskEntry) -> tuple[datetime, int]:
    return entry.order


#: The task columns a ``TaskDetail`` is built from, apart from ``outputs``.
_DETAIL_COLUMNS = (
    TaskRow.id,
    TaskRow.qualified_name,
    TaskRow.name,
    TaskRow.display_name,
    TaskRow.parent,
    TaskRow.kind,
    TaskRow.state,
    TaskRow.execution_id,
    TaskRow.error,
    TaskRow.log_tail,
    TaskRow.log_uri,
    TaskRow.ready_at,
    TaskRow.started_at,
    TaskRow.finished_at,
    TaskRow.cached,
)


def _probe_columns(dialect: str) -> tuple[Any, ...]:
    """Columns that change whenever a task row's detail may have changed.

    On Postgres that is the row version's ``xmin``, a fifth of the cost of the detail
    columns: every UPDATE writes a new version whose ``xmin`` is the writing
    transaction's id, which differs from that of the already committed transaction
    that wrote the version read before (freezing may change it without an update,
    which costs one needless re-read). SQLite has no such thing, and reading the
    detail columns costs hardly more than any subset of them, so they are the probe.
    """
    if dialect == "postgresql":
        return (literal_column("sched_tasks.xmin::text::bigint").label("probe"),)
    return _DETAIL_COLUMNS[1:]


class StatusCache:
    """Builds run snapshots, reusing the ``TaskEntry`` of every task row that has not
    changed since the previous snapshot of the same run.

    Each call reads one cheap probe per task row (see :func:`_probe_columns`); only rows
    whose probe changed, and new rows, are read in full, JSON ``outputs`` included, and
    only rows whose detail columns then differ get a new ``TaskDetail`` (a row's outputs
    are only written together with its state and end time, so those columns tell when
    they changed).
    """

    def __init__(self, full_every: float = 2.0) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[int, TaskEntry]] = {}
        #: Per run: task names written since its last snapshot (None: unknown, read all).
        self._pending: dict[str, set[str] | None] = {}
        self._full_at: dict[str, float] = {}
        self.full_every = full_every
        # One snapshot at a time: each builds on the previous one's baseline.
        self._reading = threading.Lock()

    def note_changed(self, run_id: str, names: Iterable[str] | None) -> None:
        """Tells the cache which task rows of ``run_id`` were written (and committed);
        None when that is not known. Until a whole read is due (at the latest every
        ``full_every`` seconds, which bounds the cost of a writer that forgot to tell),
        snapshots of a run read only the rows they were told of."""
        with self._lock:
            if names is None:
                self._pending[run_id] = None
            elif run_id not in self._pending:
                self._pending[run_id] = set(names)
            else:
                known = self._pending[run_id]
                if known is not None:
                    known.update(names)

    def status(self, s: Session, run_id: str) -> scheduler_pb2.RunStatus | None:
        """The run's whole status, or None for an unknown run."""
        snapshot = self.snapshot(s, run_id)
        return None if snapshot is None else snapshot.status()

    def snapshot(self, s: Session, run_id: str) -> RunSnapshot | None:
        """The run and all its tasks as they are now, or None for an unknown run."""
        with self._reading:
            return self._snapshot(s, run_id)

    def _snapshot(self, s: Session, run_id: str) -> RunSnapshot | None:
        # Core statements: the ORM's row handling would cost more than the reads.
        db = s.connection()
        run = db.execute(
            select(RunRow.run_id, RunRow.state, RunRow.error, RunRow.outputs).where(RunRow.run_id == run_id)
        ).first()
        if run is None:
            with self._lock:
                self._runs.pop(run_id, None)
            return None
        state, error, outputs = run.state, run.error or "", run.outputs or {}
        if state in FINAL_STATES and db.execute(
            select(TaskRow.id).where(TaskRow.run_id == run_id, TaskRow.unrecorded.is_(True)).limit(1)
        ).first():
            # Ended, but the metadata service has not got all its results yet (the engine
            # records them right after the commit, or a sweep after a crash): nobody
            # should see it final and look for lineage that is not there yet.
            state, error, outputs = RUNNING, "", {}
        clock = time.monotonic()
        with self._lock:
            baseline = self._runs.get(run_id)
            cached = baseline or {}
            pending = self._pending.pop(run_id, set())
            whole = (
                baseline is None
                or pending is None
                or state in FINAL_STATES
                or clock - self._full_at.get(run_id, 0.0) > self.full_every
            )
            if whole:
                self._full_at[run_id] = clock
        probes = _probe_columns(db.dialect.name)
        fresh: dict[int, TaskEntry] = {}
        stale: dict[int, list[Any]] = {}
        if whole:
            known = cached.get
            for row_id, *probe in db.execute(select(TaskRow.id, *probes).where(TaskRow.run_id == run_id)):
                entry = known(row_id)
                if entry is not None and entry.probe == probe:
                    fresh[row_id] = entry
                else:
                    stale[row_id] = probe
        else:
            # Only the rows written since, in full: the others are as the previous snapshot
            # read them.
            fresh = dict(cached)
            names = sorted(pending or ())
            by_name = {e.task_id: row_id for row_id, e in cached.items()} if names else {}
            seen: set[int] = set()
            for i in range(0, len(names), 500):
                query = select(*_DETAIL_COLUMNS, TaskRow.outputs, *probes).where(
                    TaskRow.run_id == run_id, TaskRow.qualified_name.in_(names[i : i + 500])
                )
                for row in db.execute(query):
                    values = tuple(row)
                    width = len(_DETAIL_COLUMNS)
                    self._read_row(cached, fresh, row, values[:width], list(values[width + 1 :]))
                    seen.add(row.id)
            for name in names:
                old = by_name.get(name)
                if old is not None and old not in seen:
                    fresh.pop(old, None)  # gone, or recreated under a new id (read above)
        # Read after the probes: a row written in between pairs an older probe with newer
        # values, which costs one more read next time, never a missed change.
        ids = list(stale)
        for i in range(0, len(ids), 500):
            query = select(*_DETAIL_COLUMNS, TaskRow.outputs).where(TaskRow.id.in_(ids[i : i + 500]))
            for row in db.execute(query):
                self._read_row(cached, fresh, row, tuple(row)[:-1], stale[row.id])
        with self._lock:
            if state in FINAL_STATES:
                # An ended run is seldom asked about again; a retry reads its rows afresh.
                self._runs.pop(run_id, None)
                self._full_at.pop(run_id, None)
            else:
                self._runs[run_id] = fresh
        return RunSnapshot(
            run_id=run.run_id,
            state=state,
            error=error,
            outputs=outputs,
            tasks={e.task_id: e for e in fresh.values()},
        )

    @staticmethod
    def _read_row(
        cached: Mapping[int, TaskEntry], fresh: dict[int, TaskEntry], row: Any, signature: tuple[Any, ...], probe: Any
    ) -> None:
        """Puts the entry of a row read in full into ``fresh`` (reusing its detail when
        the row changed only in columns the detail does not show: a pid, a lease)."""
        entry = cached.get(row.id)
        if entry is not None and entry.signature == signature:
            fresh[row.id] = TaskEntry(entry.task_id, entry.signature, entry.order, entry.cached, entry.detail, probe)
        else:
            fresh[row.id] = TaskEntry(
                task_id=row.qualified_name,
                signature=signature,
                order=(utc(row.ready_at) or _EPOCH, row.id),
                cached=bool(row.cached),
                detail=_detail(row, row.outputs),
                probe=probe,
            )


_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def _detail(row: Any, outputs: Mapping[str, Any] | None) -> run_pb2.TaskDetail:
    detail = run_pb2.TaskDetail(
        task_id=row.qualified_name,
        display_name=row.display_name or row.name,
        state=row.state,
        execution_id=row.execution_id or 0,
        error=row.error or "",
        log_tail=row.log_tail or "",
        log_uri=row.log_uri or "",
        parent_task_id=row.parent or "",
        kind=row.kind,
        cached=bool(row.cached),
    )
    for field, value in (("create_time", row.ready_at), ("start_time", row.started_at), ("end_time", row.finished_at)):
        stamp = _timestamp(value)
        if stamp is not None:
            getattr(detail, field).CopyFrom(stamp)
    if outputs:
        detail.outputs.CopyFrom(outputs_proto(outputs))
    return detail
