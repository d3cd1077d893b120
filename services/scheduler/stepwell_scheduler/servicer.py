"""The ``stepwell.v1.Scheduler`` gRPC servicer: protobuf in, service layer, protobuf out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
            run_options(request.options) if request.HasField("options") else None,
        )
        return scheduler_pb2.StartRunResponse(already_started=already)

    @rpc_errors
    def RetryRun(
        self, request: scheduler_pb2.RetryTasksRequest, context: grpc.ServicerContext
    ) -> scheduler_pb2.RetryTasksResponse:
        self.service.retry_run(request.run_id)
        return scheduler_pb2.RetryTasksResponse()

    @rpc_errors
    def GetTaskLog(
        self, request: scheduler_pb2.GetTaskLogRequest, context: grpc.ServicerContext
    ) -> scheduler_pb2.GetTaskLogResponse:
        text, uri = self.service.task_log(request.run_id, request.task_id)
        return scheduler_pb2.GetTaskLogResponse(text=text, log_uri=uri)

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
            # Woken by this scheduler's changes, else every poll interval: another
            # scheduler on the same database may be driving the run.
            seen = changes.wait(request.run_id, seen, self.watch_poll_seconds)
            fresh = self.service.status(request.run_id)
            if fresh != status:
                status = fresh
                yield status


def run_options(options: scheduler_pb2.RunOptions) -> dict[str, Any]:
    """``RunOptions`` as the dict the service layer keeps with the run."""
    result: dict[str, Any] = {}
    if options.disable_cache:
        result["disable_cache"] = True
    if options.timeout_seconds:
        result["timeout_seconds"] = options.timeout_seconds
    if options.task_timeout_seconds:
        result["task_timeout_seconds"] = options.task_timeout_seconds
    if options.HasField("platform_spec"):
        result["platform_spec"] = json_format.MessageToDict(options.platform_spec)
    return result
