from google.protobuf import struct_pb2 as _struct_pb2
from stepwell.v1 import common_pb2 as _common_pb2
from stepwell.v1 import run_pb2 as _run_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunOptions(_message.Message):
    __slots__ = ("disable_cache", "timeout_seconds", "task_timeout_seconds", "platform_spec")
    DISABLE_CACHE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TASK_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_SPEC_FIELD_NUMBER: _ClassVar[int]
    disable_cache: bool
    timeout_seconds: float
    task_timeout_seconds: float
    platform_spec: _struct_pb2.Struct
    def __init__(self, disable_cache: _Optional[bool] = ..., timeout_seconds: _Optional[float] = ..., task_timeout_seconds: _Optional[float] = ..., platform_spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RetryTasksRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class RetryTasksResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTaskLogRequest(_message.Message):
    __slots__ = ("run_id", "task_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    task_id: str
    def __init__(self, run_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class GetTaskLogResponse(_message.Message):
    __slots__ = ("text", "log_uri")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOG_URI_FIELD_NUMBER: _ClassVar[int]
    text: str
    log_uri: str
    def __init__(self, text: _Optional[str] = ..., log_uri: _Optional[str] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("run_id", "pipeline_spec", "parameters", "pipeline_root", "namespace", "options")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_SPEC_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_ROOT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    pipeline_spec: _struct_pb2.Struct
    parameters: _struct_pb2.Struct
    pipeline_root: str
    namespace: str
    options: RunOptions
    def __init__(self, run_id: _Optional[str] = ..., pipeline_spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., pipeline_root: _Optional[str] = ..., namespace: _Optional[str] = ..., options: _Optional[_Union[RunOptions, _Mapping]] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("already_started",)
    ALREADY_STARTED_FIELD_NUMBER: _ClassVar[int]
    already_started: bool
    def __init__(self, already_started: _Optional[bool] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRunStatusRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class RunStatus(_message.Message):
    __slots__ = ("run_id", "state", "error", "task_details", "outputs", "cached_task_ids")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TASK_DETAILS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: _common_pb2.RuntimeState
    error: str
    task_details: _containers.RepeatedCompositeFieldContainer[_run_pb2.TaskDetail]
    outputs: _common_pb2.Outputs
    cached_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.RuntimeState, str]] = ..., error: _Optional[str] = ..., task_details: _Optional[_Iterable[_Union[_run_pb2.TaskDetail, _Mapping]]] = ..., outputs: _Optional[_Union[_common_pb2.Outputs, _Mapping]] = ..., cached_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...
