import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Pipeline(_message.Message):
    __slots__ = ("pipeline_id", "display_name", "name", "description", "created_at", "namespace", "error", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    display_name: str
    name: str
    description: str
    created_at: _timestamp_pb2.Timestamp
    namespace: str
    error: _status_pb2.Status
    tags: _containers.ScalarMap[str, str]
    def __init__(self, pipeline_id: _Optional[str] = ..., display_name: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., namespace: _Optional[str] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Url(_message.Message):
    __slots__ = ("pipeline_url",)
    PIPELINE_URL_FIELD_NUMBER: _ClassVar[int]
    pipeline_url: str
    def __init__(self, pipeline_url: _Optional[str] = ...) -> None: ...

class PipelineVersion(_message.Message):
    __slots__ = ("pipeline_id", "pipeline_version_id", "display_name", "name", "description", "created_at", "package_url", "code_source_url", "pipeline_spec", "error", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CODE_SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_SPEC_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline_version_id: str
    display_name: str
    name: str
    description: str
    created_at: _timestamp_pb2.Timestamp
    package_url: Url
    code_source_url: str
    pipeline_spec: _struct_pb2.Struct
    error: _status_pb2.Status
    tags: _containers.ScalarMap[str, str]
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline_version_id: _Optional[str] = ..., display_name: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., package_url: _Optional[_Union[Url, _Mapping]] = ..., code_source_url: _Optional[str] = ..., pipeline_spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreatePipelineRequest(_message.Message):
    __slots__ = ("pipeline",)
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    pipeline: Pipeline
    def __init__(self, pipeline: _Optional[_Union[Pipeline, _Mapping]] = ...) -> None: ...

class GetPipelineRequest(_message.Message):
    __slots__ = ("pipeline_id",)
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    def __init__(self, pipeline_id: _Optional[str] = ...) -> None: ...

class GetPipelineByNameRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListPipelinesRequest(_message.Message):
    __slots__ = ("namespace", "page_token", "page_size", "sort_by", "filter")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page_token: str
    page_size: int
    sort_by: str
    filter: str
    def __init__(self, namespace: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ..., sort_by: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListPipelinesResponse(_message.Message):
    __slots__ = ("pipelines", "total_size", "next_page_token")
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedCompositeFieldContainer[Pipeline]
    total_size: int
    next_page_token: str
    def __init__(self, pipelines: _Optional[_Iterable[_Union[Pipeline, _Mapping]]] = ..., total_size: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletePipelineRequest(_message.Message):
    __slots__ = ("pipeline_id", "cascade")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    cascade: bool
    def __init__(self, pipeline_id: _Optional[str] = ..., cascade: _Optional[bool] = ...) -> None: ...

class CreatePipelineAndVersionRequest(_message.Message):
    __slots__ = ("pipeline", "pipeline_version")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    pipeline: Pipeline
    pipeline_version: PipelineVersion
    def __init__(self, pipeline: _Optional[_Union[Pipeline, _Mapping]] = ..., pipeline_version: _Optional[_Union[PipelineVersion, _Mapping]] = ...) -> None: ...

class CreatePipelineVersionRequest(_message.Message):
    __slots__ = ("pipeline_id", "pipeline_version")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline_version: PipelineVersion
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline_version: _Optional[_Union[PipelineVersion, _Mapping]] = ...) -> None: ...

class GetPipelineVersionRequest(_message.Message):
    __slots__ = ("pipeline_id", "pipeline_version_id")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline_version_id: str
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline_version_id: _Optional[str] = ...) -> None: ...

class ListPipelineVersionsRequest(_message.Message):
    __slots__ = ("pipeline_id", "page_token", "page_size", "sort_by", "filter")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    page_token: str
    page_size: int
    sort_by: str
    filter: str
    def __init__(self, pipeline_id: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ..., sort_by: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListPipelineVersionsResponse(_message.Message):
    __slots__ = ("pipeline_versions", "next_page_token", "total_size")
    PIPELINE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    pipeline_versions: _containers.RepeatedCompositeFieldContainer[PipelineVersion]
    next_page_token: str
    total_size: int
    def __init__(self, pipeline_versions: _Optional[_Iterable[_Union[PipelineVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class DeletePipelineVersionRequest(_message.Message):
    __slots__ = ("pipeline_id", "pipeline_version_id")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline_version_id: str
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline_version_id: _Optional[str] = ...) -> None: ...

class UpdatePipelineRequest(_message.Message):
    __slots__ = ("pipeline", "update_mask")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    pipeline: Pipeline
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, pipeline: _Optional[_Union[Pipeline, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdatePipelineVersionRequest(_message.Message):
    __slots__ = ("pipeline_version", "update_mask")
    PIPELINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    pipeline_version: PipelineVersion
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, pipeline_version: _Optional[_Union[PipelineVersion, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UploadPipelineRequest(_message.Message):
    __slots__ = ("content", "filename", "name", "display_name", "description", "namespace", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    filename: str
    name: str
    display_name: str
    description: str
    namespace: str
    tags: _containers.ScalarMap[str, str]
    def __init__(self, content: _Optional[bytes] = ..., filename: _Optional[str] = ..., name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., namespace: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UploadPipelineVersionRequest(_message.Message):
    __slots__ = ("content", "filename", "pipeline_id", "name", "display_name", "description", "tags", "code_source_url")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CODE_SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    filename: str
    pipeline_id: str
    name: str
    display_name: str
    description: str
    tags: _containers.ScalarMap[str, str]
    code_source_url: str
    def __init__(self, content: _Optional[bytes] = ..., filename: _Optional[str] = ..., pipeline_id: _Optional[str] = ..., name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., code_source_url: _Optional[str] = ...) -> None: ...
