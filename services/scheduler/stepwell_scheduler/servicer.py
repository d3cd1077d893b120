"""The ``stepwell.v1.Scheduler`` gRPC servicer: protobuf in, service layer, protobuf out."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf import json_format

from stepwell.server import rpc_errors
from stepwell.v1 import common_pb2, scheduler_pb2, scheduler_pb2_grpc
from stepwell_scheduler.service import SchedulerService

SERVICE_NAME = "stepwell.v1.Scheduler"
_FINAL = {common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED, common_pb2.SKIPPED}


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    """Implements the Scheduler service over :class:`SchedulerService`."""

    def __init__(self, service: SchedulerService, watch_poll_seconds: float = 1.0) -> None:
        self.service = service
        self.watch_poll_seconds = watch_poll_seconds

    @rpc_errors
    def StartRun(self, request: scheduler_pb2.StartRunRequest, context: grpc.ServicerContext) -> scheduler_pb2.StartRunResponse:
        already = self.service.start_run(
            request.run_id,
            json_format.MessageToDict(request.pipeline_spec),
            json_format.MessageToDict(request.parameters),
            request.pipeline_root,
            request.namespace,
        )
        return scheduler_pb2.StartRunResponse(already_started=already)

    @rpc_errors
    def CancelRun(self, request: scheduler_pb2.CancelRunRequest, context: grpc.ServicerContext) -> scheduler_pb2.CancelRunResponse:
        self.service.cancel_run(request.run_id)
        return scheduler_pb2.CancelRunResponse()

    @rpc_errors
    def GetRunStatus(self, request: scheduler_pb2.GetRunStatusRequest, context: grpc.ServicerContext) -> scheduler_pb2.RunStatus:
        return self.service.status(request.run_id)

    @rpc_errors
    def WatchRun(
        self, request: scheduler_pb2.GetRunStatusRequest, context: grpc.ServicerContext
    ) -> Iterator[scheduler_pb2.RunStatus]:
        changes = self.service.changes
        seen = changes.version(request.run_id)
        status = self.service.status(request.run_id)
        yield status
        while status.state not in _FINAL and context.is_active():
            version = changes.wait(request.run_id, seen, self.watch_poll_seconds)
            if version == seen:
                continue
            seen = version
            fresh = self.service.status(request.run_id)
            if fresh != status:
                status = fresh
                yield status
