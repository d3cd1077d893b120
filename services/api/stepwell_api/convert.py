"""Conversions between ``stepwell.v1`` protobuf messages and the API's domain objects.

Only the servicer (and later the REST layer) uses these: protobuf stays at the edge.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime, timedelta, timezone
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

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def timestamp_to_datetime(message: Any, field: str) -> datetime | None:
    """``message.<field>`` as an aware UTC datetime (to the microsecond, as
    ``Timestamp.ToDatetime``), or None when unset."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    # Arithmetic rather than ToDatetime, which costs twice as much; a full status report
    # carries three stamps per task.
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def _set_timestamp(message: Any, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value)


_STATES = {number: RunState(name) for name, number in common_pb2.RuntimeState.items()}


def state_from_proto(value: int) -> RunState:
    """The domain state for a ``RuntimeState`` number."""
    state = _STATES.get(value)
    if state is None:
        raise InvalidArgument(f"unknown run state {value}")
    return state


def state_to_proto(state: RunState) -> str:
    """The ``RuntimeState`` name of a domain state (message constructors take enum names)."""
    return state.value


def outputs_from_proto(message: common_pb2.Outputs) -> Outputs:
    """Domain outputs from an ``Outputs`` message."""
    if not message.artifacts and not message.parameters.fields:
        return Outputs()
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
    # Struct.update rather than json_format.ParseDict: the same values, a third of the
    # cost, and a large run's GetRun converts the outputs of every task.
    if outputs.parameters:
        message.parameters.update(outputs.parameters)
    for name, refs in outputs.artifacts.items():
        target = message.artifacts[name].artifacts
        for ref in refs:
            added = target.add(
                uri=ref.uri,
                artifact_id=ref.artifact_id,
                schema_title=ref.schema_title,
                size_bytes=ref.size_bytes,
                sha256=ref.sha256,
            )
            if ref.metadata:
                added.metadata.update(ref.metadata)


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
        cached=message.cached,
    )


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


def _stamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    # Arithmetic on the aware datetime: Timestamp.FromDatetime costs several times more,
    # and a large run's reply has three stamps per task.
    if value is None:
        return None
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def task_messages(run: Run) -> tuple[list[run_pb2.TaskDetail], list[run_pb2.PipelineTaskDetail]]:
    """The run's tasks as Stepwell's ``task_details`` and KFP's ``run_details.task_details``,
    built in one pass (their times are converted once).

    A KFP detail lists its children: from ``run.child_task_ids`` when the run lists only
    changed tasks, else from the tasks themselves."""
    children = run.child_task_ids
    if children is None:
        children = {}
        for task in run.task_details:
            if task.parent_task_id:
                children.setdefault(task.parent_task_id, []).append(task.task_id)
    details: list[run_pb2.TaskDetail] = []
    kfp_details: list[run_pb2.PipelineTaskDetail] = []
    run_id = run.run_id
    for task in run.task_details:
        create_time, start_time, end_time = _stamp(task.create_time), _stamp(task.start_time), _stamp(task.end_time)
        state = task.state.value
        message = run_pb2.TaskDetail(
            task_id=task.task_id,
            display_name=task.display_name,
            state=state,
            execution_id=task.execution_id,
            error=task.error,
            log_tail=task.log_tail,
            log_uri=task.log_uri,
            parent_task_id=task.parent_task_id,
            kind=task.kind,
            cached=task.cached,
            create_time=create_time,
            start_time=start_time,
            end_time=end_time,
        )
        detail = run_pb2.PipelineTaskDetail(
            run_id=run_id,
            task_id=task.task_id,
            display_name=task.display_name or task.task_id,
            # KFP shows a task served from the cache as SKIPPED (kfp-facts §4.6); Stepwell's
            # own detail says SUCCEEDED with ``cached`` set.
            state=RunState.SKIPPED.value if task.cached and task.state == RunState.SUCCEEDED else state,
            execution_id=task.execution_id,
            error=error_status(task.error),
            parent_task_id=task.parent_task_id,
            child_tasks=[run_pb2.ChildTask(task_id=c) for c in children.get(task.task_id, ())],
            create_time=create_time,
            start_time=start_time,
            end_time=end_time,
        )
        outputs = task.outputs
        if outputs.parameters or outputs.artifacts:
            outputs_to_proto(outputs, message.outputs)
            for name, refs in outputs.artifacts.items():
                ids = [ref.artifact_id for ref in refs if ref.artifact_id]
                if ids:
                    detail.outputs[name].artifact_ids.extend(ids)
        details.append(message)
        kfp_details.append(detail)
    return details, kfp_details


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
        pipeline_spec=dict_to_struct(run.pipeline_spec) if run.pipeline_spec and not run.pipeline_spec_json else None,
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
        status_version=run.status_version,
        partial_tasks=run.partial_tasks,
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
    details, kfp_details = task_messages(run)
    message.task_details.extend(details)
    message.run_details.task_details.extend(kfp_details)  # sets run_details even when empty, as before
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
        partial=message.partial,
    )
