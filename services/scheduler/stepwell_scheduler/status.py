"""Turning run and task rows into ``RunStatus`` / ``TaskDetail`` protos (the edge of the service)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from sqlalchemy import select
from sqlalchemy.orm import Session

from stepwell.v1 import common_pb2, run_pb2, scheduler_pb2
from stepwell_scheduler.models import RunRow, TaskRow


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


def task_detail(row: TaskRow) -> run_pb2.TaskDetail:
    """One task row as a ``TaskDetail``."""
    detail = run_pb2.TaskDetail(
        task_id=row.qualified_name,
        display_name=row.display_name or row.name,
        state=row.state,  # type: ignore[arg-type]
        execution_id=row.execution_id or 0,
        error=row.error or "",
        log_tail=row.log_tail or "",
        log_uri=row.log_uri or "",
        parent_task_id=row.parent or "",
        kind=row.kind,
    )
    for field, value in (("create_time", row.ready_at), ("start_time", row.started_at), ("end_time", row.finished_at)):
        stamp = _timestamp(value)
        if stamp is not None:
            getattr(detail, field).CopyFrom(stamp)
    if row.outputs:
        detail.outputs.CopyFrom(outputs_proto(row.outputs))
    return detail


def run_status(run: RunRow, rows: Iterable[TaskRow]) -> scheduler_pb2.RunStatus:
    """A run and its tasks as a ``RunStatus``."""
    ordered = sorted(rows, key=lambda r: (utc(r.ready_at) or datetime.min.replace(tzinfo=timezone.utc), r.id))
    status = scheduler_pb2.RunStatus(
        run_id=run.run_id,
        state=run.state,  # type: ignore[arg-type]
        error=run.error or "",
        task_details=[task_detail(r) for r in ordered],
        cached_task_ids=[r.qualified_name for r in ordered if r.cached],
    )
    if run.outputs:
        status.outputs.CopyFrom(outputs_proto(run.outputs))
    return status


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


class StatusCache:
    """Builds ``RunStatus`` messages, reusing the ``TaskDetail`` of every task row that has
    not changed since the previous status of the same run.

    Each call still reads every task row of the run, but only its plain columns; the
    JSON ``outputs`` of a row are read and converted only when the row changed (its
    state, times, error, log or execution differ). A row's outputs are only written
    together with its state and end time, so those columns tell when they changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[int, tuple[tuple[Any, ...], run_pb2.TaskDetail]]] = {}

    def status(self, s: Session, run_id: str) -> scheduler_pb2.RunStatus | None:
        run = s.get(RunRow, run_id)
        if run is None:
            with self._lock:
                self._runs.pop(run_id, None)
            return None
        with self._lock:
            cached = dict(self._runs.get(run_id) or {})
        rows = list(s.execute(select(*_DETAIL_COLUMNS).where(TaskRow.run_id == run_id)))
        fresh: dict[int, tuple[tuple[Any, ...], run_pb2.TaskDetail]] = {}
        changed: list[Any] = []
        for row in rows:
            signature = tuple(row)
            entry = cached.get(row.id)
            if entry is not None and entry[0] == signature:
                fresh[row.id] = entry
            else:
                changed.append(row)
        outputs: dict[int, dict[str, Any]] = {}
        ids = [row.id for row in changed]
        for i in range(0, len(ids), 500):
            query = select(TaskRow.id, TaskRow.outputs).where(TaskRow.id.in_(ids[i : i + 500]))
            outputs.update({row_id: value for row_id, value in s.execute(query)})
        for row in changed:
            fresh[row.id] = (tuple(row), _detail(row, outputs.get(row.id)))
        if run.state in _FINAL_RUN_STATES:
            with self._lock:
                self._runs.pop(run_id, None)
        else:
            with self._lock:
                self._runs[run_id] = fresh
        ordered = sorted(rows, key=lambda r: (utc(r.ready_at) or _EPOCH, r.id))
        status = scheduler_pb2.RunStatus(
            run_id=run.run_id,
            state=run.state,  # type: ignore[arg-type]
            error=run.error or "",
            task_details=[fresh[r.id][1] for r in ordered],
            cached_task_ids=[r.qualified_name for r in ordered if r.cached],
        )
        if run.outputs:
            status.outputs.CopyFrom(outputs_proto(run.outputs))
        return status


_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_FINAL_RUN_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})


def _detail(row: Any, outputs: dict[str, Any] | None) -> run_pb2.TaskDetail:
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
    )
    for field, value in (("create_time", row.ready_at), ("start_time", row.started_at), ("end_time", row.finished_at)):
        stamp = _timestamp(value)
        if stamp is not None:
            getattr(detail, field).CopyFrom(stamp)
    if outputs:
        detail.outputs.CopyFrom(outputs_proto(outputs))
    return detail
