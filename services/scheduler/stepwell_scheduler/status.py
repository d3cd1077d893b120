"""Turning run and task rows into ``RunStatus`` / ``TaskDetail`` protos (the edge of the service)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

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
