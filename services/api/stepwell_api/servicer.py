"""The ``stepwell.v1.RunService`` gRPC servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from stepwell.server import ServiceBinding, rpc_errors
from stepwell.v1 import run_pb2, run_pb2_grpc
from stepwell_api.convert import new_run_from_proto, report_from_proto, run_to_proto
from stepwell_api.domain import RunQuery
from stepwell_api.service import RunService

EMPTY = empty_pb2.Empty()


class RunServicer(run_pb2_grpc.RunServiceServicer):
    """Serves ``stepwell.v1.RunService`` from a :class:`RunService`."""

    def __init__(self, service: RunService) -> None:
        self.service = service

    @rpc_errors
    def CreateRun(self, request: run_pb2.CreateRunRequest, context: grpc.ServicerContext) -> run_pb2.Run:
        return run_to_proto(self.service.create_run(new_run_from_proto(request.run, request.experiment_id)))

    @rpc_errors
    def GetRun(self, request: run_pb2.GetRunRequest, context: grpc.ServicerContext) -> run_pb2.Run:
        query = RunQuery(
            tasks_after_version=request.tasks_after_version, omit_pipeline_spec=request.omit_pipeline_spec
        )
        return run_to_proto(self.service.get_run(request.run_id, query))

    @rpc_errors
    def ListRuns(
        self, request: run_pb2.ListRunsRequest, context: grpc.ServicerContext
    ) -> run_pb2.ListRunsResponse:
        page = self.service.list_runs(
            namespace=request.namespace or None,
            page_size=request.page_size,
            page_token=request.page_token,
            experiment_id=request.experiment_id,
            sort_by=request.sort_by,
            filter=request.filter,
        )
        return run_pb2.ListRunsResponse(
            runs=[run_to_proto(r) for r in page.runs],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    @rpc_errors
    def TerminateRun(self, request: run_pb2.TerminateRunRequest, context: grpc.ServicerContext) -> run_pb2.Run:
        return run_to_proto(self.service.terminate_run(request.run_id))

    @rpc_errors
    def ArchiveRun(self, request: run_pb2.ArchiveRunRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.service.archive_run(request.run_id)
        return EMPTY

    @rpc_errors
    def UnarchiveRun(self, request: run_pb2.UnarchiveRunRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.service.unarchive_run(request.run_id)
        return EMPTY

    @rpc_errors
    def DeleteRun(self, request: run_pb2.DeleteRunRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.service.delete_run(request.run_id, delete_artifacts=request.delete_artifacts)
        return EMPTY

    @rpc_errors
    def RetryRun(self, request: run_pb2.RetryRunRequest, context: grpc.ServicerContext) -> run_pb2.Run:
        return run_to_proto(self.service.retry_run(request.run_id))

    @rpc_errors
    def ReportRunStatus(
        self, request: run_pb2.ReportRunStatusRequest, context: grpc.ServicerContext
    ) -> run_pb2.ReportRunStatusResponse:
        self.service.report_status(report_from_proto(request))
        return run_pb2.ReportRunStatusResponse()


def run_service_binding(service: RunService) -> ServiceBinding:
    """The binding :func:`stepwell.server.start_server` needs to serve ``service``."""
    return ServiceBinding(
        add_to_server=run_pb2_grpc.add_RunServiceServicer_to_server,
        servicer=RunServicer(service),
        full_name="stepwell.v1.RunService",
    )
