from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RuntimeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUNTIME_STATE_UNSPECIFIED: _ClassVar[RuntimeState]
    PENDING: _ClassVar[RuntimeState]
    RUNNING: _ClassVar[RuntimeState]
    SUCCEEDED: _ClassVar[RuntimeState]
    SKIPPED: _ClassVar[RuntimeState]
    FAILED: _ClassVar[RuntimeState]
    CANCELING: _ClassVar[RuntimeState]
    CANCELED: _ClassVar[RuntimeState]
    PAUSED: _ClassVar[RuntimeState]
RUNTIME_STATE_UNSPECIFIED: RuntimeState
PENDING: RuntimeState
RUNNING: RuntimeState
SUCCEEDED: RuntimeState
SKIPPED: RuntimeState
FAILED: RuntimeState
CANCELING: RuntimeState
CANCELED: RuntimeState
PAUSED: RuntimeState

class ArtifactRef(_message.Message):
    __slots__ = ("uri", "metadata", "artifact_id", "schema_title", "size_bytes", "sha256")
    URI_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_TITLE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    uri: str
    metadata: _struct_pb2.Struct
    artifact_id: int
    schema_title: str
    size_bytes: int
    sha256: str
    def __init__(self, uri: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., artifact_id: _Optional[int] = ..., schema_title: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ArtifactList(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ...) -> None: ...

class Outputs(_message.Message):
    __slots__ = ("parameters", "artifacts")
    class ArtifactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ArtifactList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ArtifactList, _Mapping]] = ...) -> None: ...
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    parameters: _struct_pb2.Struct
    artifacts: _containers.MessageMap[str, ArtifactList]
    def __init__(self, parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., artifacts: _Optional[_Mapping[str, ArtifactList]] = ...) -> None: ...
