import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from stepwell.v1 import run_pb2 as _run_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CronSchedule(_message.Message):
    __slots__ = ("start_time", "end_time", "cron")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    cron: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cron: _Optional[str] = ...) -> None: ...

class PeriodicSchedule(_message.Message):
    __slots__ = ("start_time", "end_time", "interval_second")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECOND_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    interval_second: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_second: _Optional[int] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("cron_schedule", "periodic_schedule")
    CRON_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    PERIODIC_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    cron_schedule: CronSchedule
    periodic_schedule: PeriodicSchedule
    def __init__(self, cron_schedule: _Optional[_Union[CronSchedule, _Mapping]] = ..., periodic_schedule: _Optional[_Union[PeriodicSchedule, _Mapping]] = ...) -> None: ...

class RecurringRun(_message.Message):
    __slots__ = ("recurring_run_id", "display_name", "description", "pipeline_version_id", "pipeline_spec", "runtime_config", "service_account", "max_concurrency", "trigger", "mode", "created_at", "updated_at", "status", "error", "no_catchup", "namespace", "experiment_id", "pipeline_version_reference", "next_fire_at")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[RecurringRun.Mode]
        ENABLE: _ClassVar[RecurringRun.Mode]
        DISABLE: _ClassVar[RecurringRun.Mode]
    MODE_UNSPECIFIED: RecurringRun.Mode
    ENABLE: RecurringRun.Mode
    DISABLE: RecurringRun.Mode
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[RecurringRun.Status]
        ENABLED: _ClassVar[RecurringRun.Status]
        DISABLED: _ClassVar[RecurringRun.Status]
    STATUS_UNSPECIFIED: RecurringRun.Status
    ENABLED: RecurringRun.Status
    DISABLED: RecurringRun.Status
    RECURRING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_SPEC_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_CONFIG_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NO_CATCHUP_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_VERSION_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_AT_FIELD_NUMBER: _ClassVar[int]
    recurring_run_id: str
    display_name: str
    description: str
    pipeline_version_id: str
    pipeline_spec: _struct_pb2.Struct
    runtime_config: _run_pb2.RuntimeConfig
    service_account: str
    max_concurrency: int
    trigger: Trigger
    mode: RecurringRun.Mode
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    status: RecurringRun.Status
    error: _status_pb2.Status
    no_catchup: bool
    namespace: str
    experiment_id: str
    pipeline_version_reference: _run_pb2.PipelineVersionReference
    next_fire_at: _timestamp_pb2.Timestamp
    def __init__(self, recurring_run_id: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., pipeline_version_id: _Optional[str] = ..., pipeline_spec: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., runtime_config: _Optional[_Union[_run_pb2.RuntimeConfig, _Mapping]] = ..., service_account: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., trigger: _Optional[_Union[Trigger, _Mapping]] = ..., mode: _Optional[_Union[RecurringRun.Mode, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[RecurringRun.Status, str]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., no_catchup: _Optional[bool] = ..., namespace: _Optional[str] = ..., experiment_id: _Optional[str] = ..., pipeline_version_reference: _Optional[_Union[_run_pb2.PipelineVersionReference, _Mapping]] = ..., next_fire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateRecurringRunRequest(_message.Message):
    __slots__ = ("recurring_run",)
    RECURRING_RUN_FIELD_NUMBER: _ClassVar[int]
    recurring_run: RecurringRun
    def __init__(self, recurring_run: _Optional[_Union[RecurringRun, _Mapping]] = ...) -> None: ...

class GetRecurringRunRequest(_message.Message):
    __slots__ = ("recurring_run_id",)
    RECURRING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    recurring_run_id: str
    def __init__(self, recurring_run_id: _Optional[str] = ...) -> None: ...

class ListRecurringRunsRequest(_message.Message):
    __slots__ = ("page_token", "page_size", "sort_by", "namespace", "filter", "experiment_id")
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    page_token: str
    page_size: int
    sort_by: str
    namespace: str
    filter: str
    experiment_id: str
    def __init__(self, page_token: _Optional[str] = ..., page_size: _Optional[int] = ..., sort_by: _Optional[str] = ..., namespace: _Optional[str] = ..., filter: _Optional[str] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class ListRecurringRunsResponse(_message.Message):
    __slots__ = ("recurringRuns", "total_size", "next_page_token")
    RECURRINGRUNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    recurringRuns: _containers.RepeatedCompositeFieldContainer[RecurringRun]
    total_size: int
    next_page_token: str
    def __init__(self, recurringRuns: _Optional[_Iterable[_Union[RecurringRun, _Mapping]]] = ..., total_size: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EnableRecurringRunRequest(_message.Message):
    __slots__ = ("recurring_run_id",)
    RECURRING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    recurring_run_id: str
    def __init__(self, recurring_run_id: _Optional[str] = ...) -> None: ...

class DisableRecurringRunRequest(_message.Message):
    __slots__ = ("recurring_run_id",)
    RECURRING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    recurring_run_id: str
    def __init__(self, recurring_run_id: _Optional[str] = ...) -> None: ...

class DeleteRecurringRunRequest(_message.Message):
    __slots__ = ("recurring_run_id", "propagation_policy")
    class PropagationPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PROPAGATION_POLICY_UNSPECIFIED: _ClassVar[DeleteRecurringRunRequest.PropagationPolicy]
        FOREGROUND: _ClassVar[DeleteRecurringRunRequest.PropagationPolicy]
        BACKGROUND: _ClassVar[DeleteRecurringRunRequest.PropagationPolicy]
        ORPHAN: _ClassVar[DeleteRecurringRunRequest.PropagationPolicy]
    PROPAGATION_POLICY_UNSPECIFIED: DeleteRecurringRunRequest.PropagationPolicy
    FOREGROUND: DeleteRecurringRunRequest.PropagationPolicy
    BACKGROUND: DeleteRecurringRunRequest.PropagationPolicy
    ORPHAN: DeleteRecurringRunRequest.PropagationPolicy
    RECURRING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_POLICY_FIELD_NUMBER: _ClassVar[int]
    recurring_run_id: str
    propagation_policy: DeleteRecurringRunRequest.PropagationPolicy
    def __init__(self, recurring_run_id: _Optional[str] = ..., propagation_policy: _Optional[_Union[DeleteRecurringRunRequest.PropagationPolicy, str]] = ...) -> None: ...

class UpdateRecurringRunRequest(_message.Message):
    __slots__ = ("recurring_run", "update_mask")
    RECURRING_RUN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    recurring_run: RecurringRun
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, recurring_run: _Optional[_Union[RecurringRun, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...
