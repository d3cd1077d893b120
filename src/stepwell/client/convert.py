"""Proto ⇄ client dataclasses. The only module of the client that knows protobuf messages."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from stepwell import protoconv
from stepwell.client.types import (
    ArtifactRef,
    Experiment,
    Outputs,
    Pipeline,
    PipelineVersion,
    RecurringRun,
    Run,
    TaskDetail,
)
from stepwell.v1 import common_pb2, experiment_pb2, pipeline_pb2, recurring_run_pb2, run_pb2


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict, with whole-number doubles turned back into ints."""
    from stepwell.ir import integral

    return dict(integral(protoconv.struct_to_dict(message)))


dict_to_struct = protoconv.dict_to_struct
value_of = protoconv.python_to_value
_time = protoconv.timestamp_to_datetime


def _state(value: int) -> str:
    return str(common_pb2.RuntimeState.Name(value))


def outputs_from_proto(message: common_pb2.Outputs) -> Outputs:
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
                for a in artifact_list.artifacts
            ]
            for name, artifact_list in sorted(message.artifacts.items())
        },
    )


def task_from_proto(message: run_pb2.TaskDetail) -> TaskDetail:
    return TaskDetail(
        task_id=message.task_id,
        display_name=message.display_name,
        state=_state(message.state),
        kind=message.kind,
        parent_task_id=message.parent_task_id,
        create_time=_time(message.create_time),
        start_time=_time(message.start_time),
        end_time=_time(message.end_time),
        execution_id=message.execution_id,
        outputs=outputs_from_proto(message.outputs),
        error=message.error,
        log_tail=message.log_tail,
        log_uri=message.log_uri,
        cached=message.cached,
    )


def run_from_proto(message: run_pb2.Run, tasks: list[TaskDetail] | None = None) -> Run:
    """``message`` as a :class:`Run`; with ``tasks``, those are its tasks (already
    converted) instead of ``message.task_details``."""
    from stepwell.ir import integral

    return Run(
        run_id=message.run_id,
        display_name=message.display_name,
        state=_state(message.state),
        pipeline_name=message.pipeline_name,
        namespace=message.namespace,
        description=message.description,
        experiment_id=message.experiment_id,
        parameters={
            k: integral(json_format.MessageToDict(v)) for k, v in message.runtime_config.parameters.items()
        },
        pipeline_root=message.runtime_config.pipeline_root,
        error=message.error.message,
        created_at=_time(message.created_at),
        scheduled_at=_time(message.scheduled_at),
        finished_at=_time(message.finished_at),
        outputs=outputs_from_proto(message.outputs),
        tasks=[task_from_proto(t) for t in message.task_details] if tasks is None else tasks,
        storage_state=run_pb2.StorageState.Name(message.storage_state).replace("STORAGE_STATE_UNSPECIFIED", ""),
        pipeline_id=message.pipeline_version_reference.pipeline_id,
        pipeline_version_id=message.pipeline_version_reference.pipeline_version_id,
        recurring_run_id=message.recurring_run_id,
    )


class RunWatch:
    """Follows one run through repeated GetRun calls, asking each time only for the tasks
    that changed since the previous reply and converting only those.

    Use :meth:`request` for each call and hand every reply to :meth:`update`.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        #: The ``status_version`` of the last reply (0: none yet, or no report applied).
        self.version = 0
        self._tasks: list[TaskDetail] = []
        self._index: dict[str, int] = {}
        self._state: int | None = None
        # An API service without status versions: whole replies are compared instead.
        self._unversioned: run_pb2.Run | None = None
        #: True when the last reply could not be merged: ask again at once, for every task.
        self.stale = False

    def request(self) -> run_pb2.GetRunRequest:
        """The GetRun request for the next call."""
        return run_pb2.GetRunRequest(
            run_id=self.run_id, tasks_after_version=self.version, omit_pipeline_spec=True
        )

    def update(self, message: run_pb2.Run) -> Run | None:
        """Merges a reply; the whole run when its state or status version moved (always
        on the first reply), else None.

        A reply with ``partial_tasks`` lists only changed tasks: each replaces the task
        with its id, in place, or is appended. Any other reply lists every task.

        A partial reply listing a task that was created anew (a retry recreates failed
        tasks) is not merged: the server may list that task at another place now, which
        a partial reply cannot tell. Then :attr:`stale` is set, the result is None, and
        the next request asks for every task.
        """
        self.stale = message.partial_tasks and any(self._recreated(task) for task in message.task_details)
        if self.stale:
            self.version = 0
            return None
        version = message.status_version
        changed = (
            self._state is None
            or message.state != self._state
            or version != self.version
            or (version == 0 and message != self._unversioned)
        )
        if message.partial_tasks:
            for task in message.task_details:
                converted = task_from_proto(task)
                at = self._index.get(converted.task_id)
                if at is None:
                    self._index[converted.task_id] = len(self._tasks)
                    self._tasks.append(converted)
                else:
                    self._tasks[at] = converted
        elif changed:
            self._tasks = [task_from_proto(t) for t in message.task_details]
            self._index = {t.task_id: i for i, t in enumerate(self._tasks)}
        # A version that went back (the API service's records were replaced) cannot be
        # built on: the next reply is asked for whole.
        self.version = version if version >= self.version else 0
        self._state = message.state
        if version == 0:
            self._unversioned = message
        if not changed:
            return None
        # A copy: a run handed out earlier keeps the tasks it had.
        return run_from_proto(message, tasks=list(self._tasks))

    def _recreated(self, task: run_pb2.TaskDetail) -> bool:
        at = self._index.get(task.task_id)
        return at is not None and self._tasks[at].create_time != _time(task.create_time)


def run_request(
    spec: dict[str, Any] | None,
    parameters: dict[str, Any],
    display_name: str,
    description: str,
    namespace: str,
    pipeline_root: str,
    experiment_id: str,
    pipeline_id: str = "",
    pipeline_version_id: str = "",
    service_account: str = "",
) -> run_pb2.CreateRunRequest:
    run = run_pb2.Run(
        display_name=display_name,
        description=description,
        namespace=namespace,
        experiment_id=experiment_id,
        service_account=service_account,
        runtime_config=run_pb2.RuntimeConfig(
            parameters={k: value_of(v) for k, v in parameters.items()},
            pipeline_root=pipeline_root,
        ),
    )
    if spec:
        run.pipeline_spec.CopyFrom(dict_to_struct(spec))
    else:
        run.pipeline_version_reference.pipeline_id = pipeline_id
        run.pipeline_version_reference.pipeline_version_id = pipeline_version_id
    return run_pb2.CreateRunRequest(run=run)


def pipeline_from_proto(message: pipeline_pb2.Pipeline) -> Pipeline:
    return Pipeline(
        pipeline_id=message.pipeline_id,
        name=message.name,
        display_name=message.display_name,
        description=message.description,
        namespace=message.namespace,
        created_at=_time(message.created_at),
        tags=dict(message.tags),
    )


def version_from_proto(message: pipeline_pb2.PipelineVersion) -> PipelineVersion:
    return PipelineVersion(
        pipeline_version_id=message.pipeline_version_id,
        pipeline_id=message.pipeline_id,
        name=message.name,
        display_name=message.display_name,
        description=message.description,
        created_at=_time(message.created_at),
        pipeline_spec=struct_to_dict(message.pipeline_spec),
        tags=dict(message.tags),
        code_source_url=message.code_source_url,
    )


def experiment_from_proto(message: experiment_pb2.Experiment) -> Experiment:
    return Experiment(
        experiment_id=message.experiment_id,
        display_name=message.display_name,
        description=message.description,
        namespace=message.namespace,
        storage_state=run_pb2.StorageState.Name(message.storage_state),
        created_at=_time(message.created_at),
        last_run_created_at=_time(message.last_run_created_at),
    )


def recurring_from_proto(message: recurring_run_pb2.RecurringRun) -> RecurringRun:
    from stepwell.ir import integral

    trigger = message.trigger
    schedule: Any = trigger.cron_schedule if trigger.HasField("cron_schedule") else trigger.periodic_schedule
    return RecurringRun(
        recurring_run_id=message.recurring_run_id,
        display_name=message.display_name,
        status=recurring_run_pb2.RecurringRun.Status.Name(message.status),
        description=message.description,
        namespace=message.namespace,
        experiment_id=message.experiment_id,
        cron=trigger.cron_schedule.cron,
        interval_second=trigger.periodic_schedule.interval_second,
        start_time=_time(schedule.start_time),
        end_time=_time(schedule.end_time),
        max_concurrency=message.max_concurrency,
        no_catchup=message.no_catchup,
        parameters={
            k: integral(json_format.MessageToDict(v)) for k, v in message.runtime_config.parameters.items()
        },
        pipeline_id=message.pipeline_version_reference.pipeline_id,
        pipeline_version_id=message.pipeline_version_reference.pipeline_version_id,
        created_at=_time(message.created_at),
        updated_at=_time(message.updated_at),
        next_fire_at=_time(message.next_fire_at),
    )
