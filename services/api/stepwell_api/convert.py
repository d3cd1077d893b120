"""Conversions between ``stepwell.v1`` protobuf messages and the API's domain objects.

Only the servicer (and later the REST layer) uses these: protobuf stays at the edge.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.rpc import status_pb2

from stepwell.errors import InvalidArgument
from stepwell.protoconv import dict_to_struct, python_to_value, struct_to_dict, value_to_python
from stepwell.v1 import common_pb2, run_pb2
from stepwell_api.domain import (
    ArtifactRef,
    NewRun,
    Outputs,
    Run,
    RunState,
    StatusReport,
    TaskDetail,
)


def timestamp_to_datetime(message: Any, field: str) -> datetime | None:
    """``message.<field>`` as an aware UTC datetime, or None when unset."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=timezone.utc)


def _set_timestamp(message: Any, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value)


def state_from_proto(value: int) -> RunState:
    """The domain state for a ``RuntimeState`` number."""
    try:
        return RunState(common_pb2.RuntimeState.Name(value))
    except ValueError:
        raise InvalidArgument(f"unknown run state {value}") from None


def state_to_proto(state: RunState) -> str:
    """The ``RuntimeState`` name of a domain state (message constructors take enum names)."""
    return state.value


def outputs_from_proto(message: common_pb2.Outputs) -> Outputs:
    """Domain outputs from an ``Outputs`` message."""
    return Outputs(
        parameters=struct_to_dict(message.parameters),
        artifacts={
            name: [
                ArtifactRef(
                    uri=a.uri,
                    metadata=struct_to_dict(a.metadata),
                    artifact_id=a.artifact_id,
                    schema_title=a.schema_title,
                    size_bytes=a.size_bytes,
                    sha256=a.sha256,
                )
                for a in refs.artifacts
            ]
            for name, refs in message.artifacts.items()
        },
    )


def outputs_to_proto(outputs: Outputs, message: common_pb2.Outputs) -> None:
    """Fills ``message`` from domain outputs."""
    if outputs.parameters:
        message.parameters.CopyFrom(dict_to_struct(outputs.parameters))
    for name, refs in outputs.artifacts.items():
        target = message.artifacts[name]
        for ref in refs:
            target.artifacts.append(
                common_pb2.ArtifactRef(
                    uri=ref.uri,
                    metadata=dict_to_struct(ref.metadata) if ref.metadata else None,
                    artifact_id=ref.artifact_id,
                    schema_title=ref.schema_title,
                    size_bytes=ref.size_bytes,
                    sha256=ref.sha256,
                )
            )


def task_from_proto(message: run_pb2.TaskDetail) -> TaskDetail:
    """A domain task detail from a ``TaskDetail`` message."""
    if not message.task_id:
        raise InvalidArgument("task_details[].task_id is required")
    return TaskDetail(
        task_id=message.task_id,
        display_name=message.display_name,
        state=state_from_proto(message.state),
        create_time=timestamp_to_datetime(message, "create_time"),
        start_time=timestamp_to_datetime(message, "start_time"),
        end_time=timestamp_to_datetime(message, "end_time"),
        execution_id=message.execution_id,
        outputs=outputs_from_proto(message.outputs),
        error=message.error,
        log_tail=message.log_tail,
        log_uri=message.log_uri,
        parent_task_id=message.parent_task_id,
        kind=message.kind,
    )


def task_to_proto(task: TaskDetail) -> run_pb2.TaskDetail:
    """A ``TaskDetail`` message from a domain task detail."""
    message = run_pb2.TaskDetail(
        task_id=task.task_id,
        display_name=task.display_name,
        state=state_to_proto(task.state),
        execution_id=task.execution_id,
        error=task.error,
        log_tail=task.log_tail,
        log_uri=task.log_uri,
        parent_task_id=task.parent_task_id,
        kind=task.kind,
    )
    _set_timestamp(message, "create_time", task.create_time)
    _set_timestamp(message, "start_time", task.start_time)
    _set_timestamp(message, "end_time", task.end_time)
    outputs_to_proto(task.outputs, message.outputs)
    return message


def error_status(message: str, code: int = 2) -> status_pb2.Status | None:
    """KFP's ``error`` field (google.rpc.Status) for an error text; None when empty."""
    return status_pb2.Status(code=code, message=message) if message else None


def spec_digest(spec: struct_pb2.Struct) -> bytes:
    """A digest of a spec ``Struct``'s content (deterministic serialisation sorts map keys,
    so equal content gives equal bytes; it runs in C, a small part of converting it)."""
    return hashlib.blake2b(spec.SerializeToString(deterministic=True), digest_size=20).digest()


def new_run_from_proto(message: run_pb2.Run, experiment_id: str = "") -> NewRun:
    """What CreateRun asks for; server-set fields (id, state, times) are ignored.

    The spec is ``pipeline_spec`` (the IR, or ``{pipeline_spec, platform_spec}``) or a
    ``pipeline_version_reference`` (or KFP's deprecated ``pipeline_version_id``).
    """
    has_spec = message.HasField("pipeline_spec") and bool(message.pipeline_spec.fields)
    reference = message.pipeline_version_reference
    version_id = reference.pipeline_version_id or message.pipeline_version_id
    has_reference = bool(reference.pipeline_id or version_id)
    if has_spec and has_reference:
        raise InvalidArgument("run.pipeline_spec and run.pipeline_version_reference are exclusive; give one")
    if not has_spec and not has_reference:
        raise InvalidArgument("run.pipeline_spec (or run.pipeline_version_reference) is required")
    digest = b""
    loader = None
    if has_spec:
        spec = message.pipeline_spec
        digest = spec_digest(spec)
        loader = functools.partial(struct_to_dict, spec)
    return NewRun(
        pipeline_spec={},
        spec_digest=digest,
        spec_loader=loader,
        display_name=message.display_name,
        description=message.description,
        namespace=message.namespace,
        experiment_id=message.experiment_id or experiment_id,
        parameters={
            name: value_to_python(value) for name, value in message.runtime_config.parameters.items()
        },
        pipeline_root=message.runtime_config.pipeline_root,
        pipeline_id=reference.pipeline_id,
        pipeline_version_id=version_id,
        service_account=message.service_account,
    )


def kfp_task_details(run: Run) -> list[run_pb2.PipelineTaskDetail]:
    """KFP's ``run_details.task_details`` for the run's tasks."""
    children: dict[str, list[str]] = {}
    for task in run.task_details:
        if task.parent_task_id:
            children.setdefault(task.parent_task_id, []).append(task.task_id)
    details = []
    for task in run.task_details:
        detail = run_pb2.PipelineTaskDetail(
            run_id=run.run_id,
            task_id=task.task_id,
            display_name=task.display_name or task.task_id,
            state=state_to_proto(task.state),
            execution_id=task.execution_id,
            error=error_status(task.error),
            parent_task_id=task.parent_task_id,
            child_tasks=[run_pb2.ChildTask(task_id=c) for c in children.get(task.task_id, [])],
        )
        _set_timestamp(detail, "create_time", task.create_time)
        _set_timestamp(detail, "start_time", task.start_time)
        _set_timestamp(detail, "end_time", task.end_time)
        for name, refs in task.outputs.artifacts.items():
            ids = [ref.artifact_id for ref in refs if ref.artifact_id]
            if ids:
                detail.outputs[name].artifact_ids.extend(ids)
        details.append(detail)
    return details


@functools.lru_cache(maxsize=128)
def _spec_bytes(spec_json: str) -> bytes:
    message = struct_pb2.Struct()
    json_format.Parse(spec_json, message)
    return bytes(message.SerializeToString())


def run_to_proto(run: Run) -> run_pb2.Run:
    """A ``Run`` message from a domain run (KFP's fields and Stepwell's)."""
    message = run_pb2.Run(
        run_id=run.run_id,
        display_name=run.display_name,
        description=run.description,
        namespace=run.namespace,
        experiment_id=run.experiment_id,
        pipeline_spec=None if run.pipeline_spec_json else dict_to_struct(run.pipeline_spec),
        runtime_config=run_pb2.RuntimeConfig(
            parameters={name: python_to_value(value) for name, value in run.parameters.items()},
            pipeline_root=run.pipeline_root,
        ),
        state=state_to_proto(run.state),
        error=error_status(run.error),
        pipeline_name=run.pipeline_name,
        storage_state=run_pb2.StorageState.Value(run.storage_state or "AVAILABLE"),  # type: ignore[arg-type]
        service_account=run.service_account,
        recurring_run_id=run.recurring_run_id,
    )
    if run.pipeline_spec_json:  # a listing: the same spec text converts once
        message.pipeline_spec.MergeFromString(_spec_bytes(run.pipeline_spec_json))
    if run.pipeline_id:
        message.pipeline_version_reference.pipeline_id = run.pipeline_id
        message.pipeline_version_reference.pipeline_version_id = run.pipeline_version_id
    _set_timestamp(message, "created_at", run.created_at)
    _set_timestamp(message, "scheduled_at", run.scheduled_at)
    _set_timestamp(message, "finished_at", run.finished_at)
    outputs_to_proto(run.outputs, message.outputs)
    message.task_details.extend(task_to_proto(t) for t in run.task_details)
    message.run_details.task_details.extend(kfp_task_details(run))
    return message


def report_from_proto(message: run_pb2.ReportRunStatusRequest) -> StatusReport:
    """A domain status report from a ``ReportRunStatusRequest``."""
    return StatusReport(
        run_id=message.run_id,
        state=state_from_proto(message.state),
        error=message.error,
        task_details=[task_from_proto(t) for t in message.task_details],
        outputs=outputs_from_proto(message.outputs),
        update_time=timestamp_to_datetime(message, "update_time"),
    )
