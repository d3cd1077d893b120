"""The ``stepwell.v1.RecurringRunService`` gRPC servicer."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf import empty_pb2

from stepwell.errors import InvalidArgument
from stepwell.server import ServiceBinding, rpc_errors
from stepwell.v1 import recurring_run_pb2 as pb
from stepwell.v1 import recurring_run_pb2_grpc
from stepwell_api.convert import (
    dict_to_struct,
    python_to_value,
    struct_to_dict,
    timestamp_to_datetime,
    value_to_python,
)
from stepwell_api.pipeline_servicer import list_request
from stepwell_api.recurring import RecurringRunService
from stepwell_api.resources import RecurringRun, RecurringRunChange, Trigger

EMPTY = empty_pb2.Empty()
#: update_mask paths an UpdateRecurringRun may name.
UPDATABLE = {
    "display_name", "description", "pipeline_spec", "pipeline_version_reference", "pipeline_version_id",
    "runtime_config", "runtime_config.parameters", "runtime_config.pipeline_root", "service_account",
    "max_concurrency", "trigger", "mode", "no_catchup", "experiment_id",
}


def _set_time(message: object, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value)


def recurring_to_proto(item: RecurringRun) -> pb.RecurringRun:
    message = pb.RecurringRun(
        recurring_run_id=item.recurring_run_id,
        display_name=item.display_name,
        description=item.description,
        pipeline_spec=dict_to_struct(item.full_spec),
        service_account=item.service_account,
        max_concurrency=item.max_concurrency,
        status=pb.RecurringRun.ENABLED if item.enabled else pb.RecurringRun.DISABLED,
        no_catchup=item.no_catchup,
        namespace=item.namespace,
        experiment_id=item.experiment_id,
    )
    for name, value in item.parameters.items():
        message.runtime_config.parameters[name].CopyFrom(python_to_value(value))
    message.runtime_config.pipeline_root = item.pipeline_root
    if item.pipeline_id:
        message.pipeline_version_reference.pipeline_id = item.pipeline_id
        message.pipeline_version_reference.pipeline_version_id = item.pipeline_version_id
    t = item.trigger
    schedule = message.trigger.cron_schedule if t.cron else message.trigger.periodic_schedule
    if t.cron:
        message.trigger.cron_schedule.cron = t.cron
    else:
        message.trigger.periodic_schedule.interval_second = t.interval_second
    _set_time(schedule, "start_time", t.start_time)
    _set_time(schedule, "end_time", t.end_time)
    _set_time(message, "created_at", item.created_at)
    _set_time(message, "updated_at", item.updated_at)
    _set_time(message, "next_fire_at", item.next_fire_at)
    return message


def trigger_from_proto(message: pb.Trigger) -> Trigger:
    kind = message.WhichOneof("trigger")
    if kind == "cron_schedule":
        cron = message.cron_schedule
        if not cron.cron.strip():
            raise InvalidArgument("trigger.cron_schedule.cron is required")
        return Trigger(cron=cron.cron.strip(), start_time=timestamp_to_datetime(cron, "start_time"),
                       end_time=timestamp_to_datetime(cron, "end_time"))
    if kind == "periodic_schedule":
        periodic = message.periodic_schedule
        return Trigger(interval_second=periodic.interval_second,
                       start_time=timestamp_to_datetime(periodic, "start_time"),
                       end_time=timestamp_to_datetime(periodic, "end_time"))
    raise InvalidArgument("recurring_run.trigger needs cron_schedule or periodic_schedule")


def change_from_proto(message: pb.RecurringRun, paths: set[str] | None) -> RecurringRunChange:
    """The change a create (``paths`` None: every set field) or an update asks for."""
    def wanted(name: str) -> bool:
        if paths is not None:
            return name in paths or any(p.startswith(name + ".") for p in paths)
        if name in ("pipeline_version_reference", "trigger", "runtime_config"):
            return message.HasField(name)
        if name == "pipeline_spec":
            return message.HasField("pipeline_spec") and bool(message.pipeline_spec.fields)
        return bool(getattr(message, name))

    change = RecurringRunChange()
    for name in ("display_name", "description", "service_account", "experiment_id", "no_catchup", "namespace"):
        if name == "namespace" and paths is not None:
            continue
        if wanted(name):
            setattr(change, name, getattr(message, name))
    if wanted("max_concurrency"):
        change.max_concurrency = int(message.max_concurrency)
    if wanted("trigger"):
        change.trigger = trigger_from_proto(message.trigger)
    if wanted("mode") and message.mode != pb.RecurringRun.MODE_UNSPECIFIED:
        change.enabled = message.mode == pb.RecurringRun.ENABLE
    has_spec = wanted("pipeline_spec") and bool(message.pipeline_spec.fields)
    reference = message.pipeline_version_reference
    version_id = reference.pipeline_version_id or message.pipeline_version_id
    if has_spec and (reference.pipeline_id or version_id):
        raise InvalidArgument("recurring_run.pipeline_spec and pipeline_version_reference are exclusive; give one")
    if has_spec:
        change.pipeline_spec = struct_to_dict(message.pipeline_spec)
    elif wanted("pipeline_version_reference") or wanted("pipeline_version_id"):
        change.pipeline_id, change.pipeline_version_id = reference.pipeline_id, version_id
    if wanted("runtime_config"):
        config = message.runtime_config
        change.parameters = {k: value_to_python(v) for k, v in config.parameters.items()}
        change.pipeline_root = config.pipeline_root
    return change


class RecurringRunServicer(recurring_run_pb2_grpc.RecurringRunServiceServicer):
    """Serves ``stepwell.v1.RecurringRunService`` from a :class:`RecurringRunService`."""

    def __init__(self, service: RecurringRunService) -> None:
        self.service = service

    @rpc_errors
    def CreateRecurringRun(self, request: pb.CreateRecurringRunRequest, context: grpc.ServicerContext) -> pb.RecurringRun:
        change = change_from_proto(request.recurring_run, None)
        if change.max_concurrency is None:
            change.max_concurrency = 1
        return recurring_to_proto(self.service.create(change))

    @rpc_errors
    def GetRecurringRun(self, request: pb.GetRecurringRunRequest, context: grpc.ServicerContext) -> pb.RecurringRun:
        return recurring_to_proto(self.service.get(request.recurring_run_id))

    @rpc_errors
    def ListRecurringRuns(
        self, request: pb.ListRecurringRunsRequest, context: grpc.ServicerContext
    ) -> pb.ListRecurringRunsResponse:
        items, token, total = self.service.list(list_request(request), request.namespace, request.experiment_id)
        return pb.ListRecurringRunsResponse(
            recurringRuns=[recurring_to_proto(r) for r in items], next_page_token=token, total_size=total
        )

    @rpc_errors
    def EnableRecurringRun(self, request: pb.EnableRecurringRunRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.service.set_enabled(request.recurring_run_id, True)
        return EMPTY

    @rpc_errors
    def DisableRecurringRun(self, request: pb.DisableRecurringRunRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.service.set_enabled(request.recurring_run_id, False)
        return EMPTY

    @rpc_errors
    def DeleteRecurringRun(self, request: pb.DeleteRecurringRunRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        policy = request.propagation_policy
        names = pb.DeleteRecurringRunRequest.PropagationPolicy
        if policy == names.PROPAGATION_POLICY_UNSPECIFIED:
            name = "ORPHAN"  # KFP's behaviour: the runs stay
        else:
            name = names.Name(policy) if policy in names.values() else str(policy)
        self.service.delete(request.recurring_run_id, propagation=name)
        return EMPTY

    @rpc_errors
    def UpdateRecurringRun(self, request: pb.UpdateRecurringRunRequest, context: grpc.ServicerContext) -> pb.RecurringRun:
        paths: set[str] | None = None
        if request.HasField("update_mask"):
            paths = set(request.update_mask.paths)
            unknown = {p for p in paths if p not in UPDATABLE}
            if unknown:
                raise InvalidArgument(f"update_mask names fields that cannot change: {sorted(unknown)}")
        change = change_from_proto(request.recurring_run, paths)
        return recurring_to_proto(self.service.update(request.recurring_run.recurring_run_id, change))


def recurring_run_service_binding(service: RecurringRunService) -> ServiceBinding:
    return ServiceBinding(
        add_to_server=recurring_run_pb2_grpc.add_RecurringRunServiceServicer_to_server,
        servicer=RecurringRunServicer(service),
        full_name="stepwell.v1.RecurringRunService",
    )
