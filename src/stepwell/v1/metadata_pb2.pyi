import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CacheEntry(_message.Message):
    __slots__ = ("id", "pipeline_name", "namespace", "fingerprint", "run_id", "task_name", "execution_id", "outputs", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    pipeline_name: str
    namespace: str
    fingerprint: str
    run_id: str
    task_name: str
    execution_id: int
    outputs: _struct_pb2.Struct
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., pipeline_name: _Optional[str] = ..., namespace: _Optional[str] = ..., fingerprint: _Optional[str] = ..., run_id: _Optional[str] = ..., task_name: _Optional[str] = ..., execution_id: _Optional[int] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PutCacheEntryRequest(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: CacheEntry
    def __init__(self, entry: _Optional[_Union[CacheEntry, _Mapping]] = ...) -> None: ...

class LookupCacheEntryRequest(_message.Message):
    __slots__ = ("pipeline_name", "namespace", "fingerprint")
    PIPELINE_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    pipeline_name: str
    namespace: str
    fingerprint: str
    def __init__(self, pipeline_name: _Optional[str] = ..., namespace: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class LookupCacheEntryResponse(_message.Message):
    __slots__ = ("found", "entry")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    found: bool
    entry: CacheEntry
    def __init__(self, found: _Optional[bool] = ..., entry: _Optional[_Union[CacheEntry, _Mapping]] = ...) -> None: ...

class ListCacheEntriesRequest(_message.Message):
    __slots__ = ("pipeline_name", "namespace", "limit")
    PIPELINE_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    pipeline_name: str
    namespace: str
    limit: int
    def __init__(self, pipeline_name: _Optional[str] = ..., namespace: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListCacheEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CacheEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[CacheEntry, _Mapping]]] = ...) -> None: ...

class DeleteCacheEntriesRequest(_message.Message):
    __slots__ = ("pipeline_name", "namespace", "fingerprint")
    PIPELINE_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    pipeline_name: str
    namespace: str
    fingerprint: str
    def __init__(self, pipeline_name: _Optional[str] = ..., namespace: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class DeleteCacheEntriesResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class Context(_message.Message):
    __slots__ = ("id", "type", "name", "parent_id", "custom_properties", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    name: str
    parent_id: int
    custom_properties: _struct_pb2.Struct
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., parent_id: _Optional[int] = ..., custom_properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("id", "type", "name", "state", "context_ids", "inputs", "outputs", "custom_properties", "create_time", "update_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Execution.State]
        NEW: _ClassVar[Execution.State]
        RUNNING: _ClassVar[Execution.State]
        COMPLETE: _ClassVar[Execution.State]
        FAILED: _ClassVar[Execution.State]
        CACHED: _ClassVar[Execution.State]
        CANCELED: _ClassVar[Execution.State]
    STATE_UNSPECIFIED: Execution.State
    NEW: Execution.State
    RUNNING: Execution.State
    COMPLETE: Execution.State
    FAILED: Execution.State
    CACHED: Execution.State
    CANCELED: Execution.State
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    name: str
    state: Execution.State
    context_ids: _containers.RepeatedScalarFieldContainer[int]
    inputs: _struct_pb2.Struct
    outputs: _struct_pb2.Struct
    custom_properties: _struct_pb2.Struct
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[Execution.State, str]] = ..., context_ids: _Optional[_Iterable[int]] = ..., inputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., custom_properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("id", "type", "uri", "name", "metadata", "size_bytes", "sha256", "context_ids", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    uri: str
    name: str
    metadata: _struct_pb2.Struct
    size_bytes: int
    sha256: str
    context_ids: _containers.RepeatedScalarFieldContainer[int]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., uri: _Optional[str] = ..., name: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., context_ids: _Optional[_Iterable[int]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("execution_id", "artifact_id", "type", "path", "index", "create_time")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Event.Type]
        INPUT: _ClassVar[Event.Type]
        OUTPUT: _ClassVar[Event.Type]
    TYPE_UNSPECIFIED: Event.Type
    INPUT: Event.Type
    OUTPUT: Event.Type
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    artifact_id: int
    type: Event.Type
    path: str
    index: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, execution_id: _Optional[int] = ..., artifact_id: _Optional[int] = ..., type: _Optional[_Union[Event.Type, str]] = ..., path: _Optional[str] = ..., index: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetOrCreateContextRequest(_message.Message):
    __slots__ = ("type", "name", "parent_id", "custom_properties")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    parent_id: int
    custom_properties: _struct_pb2.Struct
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., parent_id: _Optional[int] = ..., custom_properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetContextRequest(_message.Message):
    __slots__ = ("type", "name")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateExecutionRequest(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class UpdateExecutionRequest(_message.Message):
    __slots__ = ("id", "state", "outputs", "custom_properties")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    id: int
    state: Execution.State
    outputs: _struct_pb2.Struct
    custom_properties: _struct_pb2.Struct
    def __init__(self, id: _Optional[int] = ..., state: _Optional[_Union[Execution.State, str]] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., custom_properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class NewExecution(_message.Message):
    __slots__ = ("execution", "input_events")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    input_events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., input_events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class CreateExecutionsRequest(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[NewExecution]
    def __init__(self, executions: _Optional[_Iterable[_Union[NewExecution, _Mapping]]] = ...) -> None: ...

class CreateExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ...) -> None: ...

class FinishedExecution(_message.Message):
    __slots__ = ("update", "outputs", "context_ids")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    update: UpdateExecutionRequest
    outputs: _containers.RepeatedCompositeFieldContainer[ArtifactAndEvent]
    context_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, update: _Optional[_Union[UpdateExecutionRequest, _Mapping]] = ..., outputs: _Optional[_Iterable[_Union[ArtifactAndEvent, _Mapping]]] = ..., context_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class FinishExecutionsRequest(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[FinishedExecution]
    def __init__(self, executions: _Optional[_Iterable[_Union[FinishedExecution, _Mapping]]] = ...) -> None: ...

class FinishExecutionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordArtifactsResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[RecordArtifactsResponse, _Mapping]]] = ...) -> None: ...

class GetExecutionsRequest(_message.Message):
    __slots__ = ("context_id", "ids")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    context_id: int
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, context_id: _Optional[int] = ..., ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetExecutionsResponse(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ...) -> None: ...

class ArtifactAndEvent(_message.Message):
    __slots__ = ("artifact", "path", "index")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    path: str
    index: int
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., path: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class RecordArtifactsRequest(_message.Message):
    __slots__ = ("execution_id", "event_type", "artifacts", "context_ids")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_IDS_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    event_type: Event.Type
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactAndEvent]
    context_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, execution_id: _Optional[int] = ..., event_type: _Optional[_Union[Event.Type, str]] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactAndEvent, _Mapping]]] = ..., context_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RecordArtifactsResponse(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class GetArtifactsRequest(_message.Message):
    __slots__ = ("context_id", "ids", "uri")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    context_id: int
    ids: _containers.RepeatedScalarFieldContainer[int]
    uri: str
    def __init__(self, context_id: _Optional[int] = ..., ids: _Optional[_Iterable[int]] = ..., uri: _Optional[str] = ...) -> None: ...

class GetArtifactsResponse(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class PutEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class PutEventsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEventsRequest(_message.Message):
    __slots__ = ("execution_ids", "artifact_ids")
    EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_IDS_FIELD_NUMBER: _ClassVar[int]
    execution_ids: _containers.RepeatedScalarFieldContainer[int]
    artifact_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, execution_ids: _Optional[_Iterable[int]] = ..., artifact_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class GetArtifactLineageRequest(_message.Message):
    __slots__ = ("artifact_id",)
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    artifact_id: int
    def __init__(self, artifact_id: _Optional[int] = ...) -> None: ...

class ArtifactLineage(_message.Message):
    __slots__ = ("artifact", "producer", "consumers", "events")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    producer: Execution
    consumers: _containers.RepeatedCompositeFieldContainer[Execution]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., producer: _Optional[_Union[Execution, _Mapping]] = ..., consumers: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...
