import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from stepwell.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StorageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORAGE_STATE_UNSPECIFIED: _ClassVar[StorageState]
    AVAILABLE: _ClassVar[StorageState]
    ARCHIVED: _ClassVar[StorageState]
STORAGE_STATE_UNSPECIFIED: StorageState
AVAILABLE: StorageState
ARCHIVED: StorageState

class PipelineVersionReference(_message.Message):
    __slots__ = ("pipeline_id", "pipeline_version_id")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline_version_id: str
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline_version_id: _Optional[str] = ...) -> None: ...

class RuntimeConfig(_message.Message):
    __slots__ = ("parameters", "pipeline_root")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_ROOT_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.MessageMap[str, _struct_pb2.Value]
    pipeline_root: str
    def __init__(self, parameters: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., pipeline_root: _Optional[str] = ...) -> None: ...

class TaskDetail(_message.Message):
    __slots__ = ("task_id", "display_name", "state", "create_time", "start_time", "end_time", "execution_id", "outputs", "error", "log_tail", "log_uri", "parent_task_id", "kind", "cached")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    LOG_URI_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    display_name: str
    state: _common_pb2.RuntimeState
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    execution_id: int
    outputs: _common_pb2.Outputs
    error: str
    log_tail: str
    log_uri: str
    parent_task_id: str
    kind: str
    cached: bool
    def __init__(self, task_id: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.RuntimeState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_id: _Optional[int] = ..., outputs: _Optional[_Union[_common_pb2.Outputs, _Mapping]] = ..., error: _Optional[str] = ..., log_tail: _Optional[str] = ..., log_uri: _Optional[str] = ..., parent_task_id: _Optional[str] = ..., kind: _Optional[str] = ..., cached: _Optional[bool] = ...) -> None: ...

class PipelineTaskDetail(_message.Message):
    __slots__ = ("run_id", "task_id", "display_name", "create_time", "start_time", "end_time", "state", "execution_id", "error", "inputs", "outputs", "parent_task_id", "pod_name", "child_tasks")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ArtifactIdList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ArtifactIdList, _Mapping]] = ...) -> None: ...
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ArtifactIdList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ArtifactIdList, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    CHILD_TASKS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    task_id: str
    display_name: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    state: _common_pb2.RuntimeState
    execution_id: int
    error: _status_pb2.Status
    inputs: _containers.MessageMap[str, ArtifactIdList]
    outputs: _containers.MessageMap[str, ArtifactIdList]
    parent_task_id: str
    pod_name: str
    child_tasks: _containers.RepeatedCompositeFieldContainer[ChildTask]
    def __init__(self, run_id: _Optional[str] = ..., task_id: _Optional[str] = ..., display_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.RuntimeState, str]] = ..., execution_id: _Optional[int] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., inputs: _Optional[_Mapping[str, ArtifactIdList]] = ..., outputs: _Optional[_Mapping[str, ArtifactIdList]] = ..., parent_task_id: _Optional[str] = ..., pod_name: _Optional[str] = ..., child_tasks: _Optional[_Iterable[_Union[ChildTask, _Mapping]]] = ...) -> None: ...

class ArtifactIdList(_message.Message):
    __slots__ = ("artifact_ids",)
    ARTIFACT_IDS_FIELD_NUMBER: _ClassVar[int]
    artifact_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, artifact_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ChildTask(_message.Message):
    __slots__ = ("task_id", "pod_name")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    pod_name: str
    def __init__(self, task_id: _Optional[str] = ..., pod_name: _Optional[str] = ...) -> None: ...

class RunDetails(_message.Message):
    __slots__ = ("pipeline_context_id", "pipeline_run_context_id", "task_details")
    PIPELINE_CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_RUN_CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_DETAILS_FIELD_NUMBER: _ClassVar[int]
    pipeline_context_id: int
    pipeline_run_context_id: int
    task_details: _containers.RepeatedCompositeFieldContainer[PipelineTaskDetail]
    def __init__(self, pipeline_context_id: _Optional[int] = ..., pipeline_run_context_id: _Optional[int] = ..., task_details: _Optional[_Iterable[_Union[PipelineTaskDetail, _Mapping]]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "display_name", "description", "namespace", "experiment_id", "pipeline_spec", "runtime_config", "state", "created_at", "scheduled_at", "finished_at", "outputs", "task_details", "pipeline_name", "storage_state", "pipeline_version_id", "pipeline_version_reference", "service_account", "error", "run_details", "recurring_run_id", "status_version", "partial_tasks")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_SPEC_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TASK_DETAILS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_NAME_FIELD_NUMBER: _ClassVar[int]
    STORAGE_STATE_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RUN_DETAILS_FIELD_NUMBER: _ClassVar[int]
    RECURRING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_TASKS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    display_name: str
    description: str
    namespace: str
    experiment_id: str
    pipeline_spec: _struct_pb2.Struct
    runtime_config: RuntimeConfig
    state: _common_pb2.RuntimeState
    created_at: _timestamp_pb2.Timestamp
    scheduled_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    outputs: _common_pb2.Outputs
    task_details: _containers.RepeatedCompositeFieldContainer[TaskDetail]
    pipeline_name: str
    storage_state: StorageState
    pipeline_version_id: str
    pipeline_version_reference: PipelineVersionReference
    service_account: str
    error: _status_pb2.Status
    run_details: RunDetails
    recurring_run_id: str
    status_version: int
    partial_tasks: bool
    def __init__(self, run_id: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., namespace: _Optional[str] = ..., experiment_id: _Optional[str] = ..., pipeline_spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., runtime_config: _Optional[_Union[RuntimeConfig, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.RuntimeState, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outputs: _Optional[_Union[_common_pb2.Outputs, _Mapping]] = ..., task_details: _Optional[_Iterable[_Union[TaskDetail, _Mapping]]] = ..., pipeline_name: _Optional[str] = ..., storage_state: _Optional[_Union[StorageState, str]] = ..., pipeline_version_id: _Optional[str] = ..., pipeline_version_reference: _Optional[_Union[PipelineVersionReference, _Mapping]] = ..., service_account: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., run_details: _Optional[_Union[RunDetails, _Mapping]] = ..., recurring_run_id: _Optional[str] = ..., status_version: _Optional[int] = ..., partial_tasks: _Optional[bool] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("run", "experiment_id")
    RUN_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    run: Run
    experiment_id: str
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id", "experiment_id", "tasks_after_version", "omit_pipeline_spec")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    OMIT_PIPELINE_SPEC_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    experiment_id: str
    tasks_after_version: int
    omit_pipeline_spec: bool
    def __init__(self, run_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., tasks_after_version: _Optional[int] = ..., omit_pipeline_spec: _Optional[bool] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("namespace", "page_size", "page_token", "experiment_id", "sort_by", "filter")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page_size: int
    page_token: str
    experiment_id: str
    sort_by: str
    filter: str
    def __init__(self, namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., experiment_id: _Optional[str] = ..., sort_by: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ArchiveRunRequest(_message.Message):
    __slots__ = ("run_id", "experiment_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    experiment_id: str
    def __init__(self, run_id: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class UnarchiveRunRequest(_message.Message):
    __slots__ = ("run_id", "experiment_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    experiment_id: str
    def __init__(self, run_id: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id", "experiment_id", "delete_artifacts")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DELETE_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    experiment_id: str
    delete_artifacts: bool
    def __init__(self, run_id: _Optional[str] = ..., experiment_id: _Optional[str] = ..., delete_artifacts: _Optional[bool] = ...) -> None: ...

class RetryRunRequest(_message.Message):
    __slots__ = ("run_id", "experiment_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    experiment_id: str
    def __init__(self, run_id: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token", "total_size")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    total_size: int
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class TerminateRunRequest(_message.Message):
    __slots__ = ("run_id", "experiment_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    experiment_id: str
    def __init__(self, run_id: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class ReportRunStatusRequest(_message.Message):
    __slots__ = ("run_id", "state", "error", "task_details", "outputs", "update_time", "partial")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TASK_DETAILS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: _common_pb2.RuntimeState
    error: str
    task_details: _containers.RepeatedCompositeFieldContainer[TaskDetail]
    outputs: _common_pb2.Outputs
    update_time: _timestamp_pb2.Timestamp
    partial: bool
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.RuntimeState, str]] = ..., error: _Optional[str] = ..., task_details: _Optional[_Iterable[_Union[TaskDetail, _Mapping]]] = ..., outputs: _Optional[_Union[_common_pb2.Outputs, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partial: _Optional[bool] = ...) -> None: ...

class ReportRunStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
