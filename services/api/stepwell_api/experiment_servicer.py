"""The ``stepwell.v1.ExperimentService`` gRPC servicer."""

from __future__ import annotations

import contextlib

import grpc
from google.protobuf import empty_pb2

from stepwell.server import ServiceBinding, rpc_errors
from stepwell.v1 import experiment_pb2, experiment_pb2_grpc, run_pb2
from stepwell_api.experiments import ExperimentService
from stepwell_api.pipeline_servicer import list_request
from stepwell_api.resources import Experiment
from stepwell_api.service import RunService

EMPTY = empty_pb2.Empty()


def experiment_to_proto(experiment: Experiment) -> experiment_pb2.Experiment:
    message = experiment_pb2.Experiment(
        experiment_id=experiment.experiment_id,
        display_name=experiment.display_name,
        description=experiment.description,
        namespace=experiment.namespace,
        storage_state=run_pb2.StorageState.Value(experiment.storage_state),  # type: ignore[arg-type]
    )
    message.created_at.FromDatetime(experiment.created_at)
    if experiment.last_run_created_at is not None:
        message.last_run_created_at.FromDatetime(experiment.last_run_created_at)
    return message


class ExperimentServicer(experiment_pb2_grpc.ExperimentServiceServicer):
    """Serves ``stepwell.v1.ExperimentService``; deleting one stops its active runs."""

    def __init__(self, service: ExperimentService, runs: RunService) -> None:
        self.service = service
        self.runs = runs

    @rpc_errors
    def CreateExperiment(
        self, request: experiment_pb2.CreateExperimentRequest, context: grpc.ServicerContext
    ) -> experiment_pb2.Experiment:
        e = request.experiment
        return experiment_to_proto(self.service.create(e.display_name, e.description, e.namespace))

    @rpc_errors
    def GetExperiment(
        self, request: experiment_pb2.GetExperimentRequest, context: grpc.ServicerContext
    ) -> experiment_pb2.Experiment:
        return experiment_to_proto(self.service.get(request.experiment_id))

    @rpc_errors
    def ListExperiments(
        self, request: experiment_pb2.ListExperimentsRequest, context: grpc.ServicerContext
    ) -> experiment_pb2.ListExperimentsResponse:
        items, token, total = self.service.list(list_request(request), request.namespace)
        return experiment_pb2.ListExperimentsResponse(
            experiments=[experiment_to_proto(e) for e in items], next_page_token=token, total_size=total
        )

    @rpc_errors
    def ArchiveExperiment(
        self, request: experiment_pb2.ArchiveExperimentRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self.service.archive(request.experiment_id)
        return EMPTY

    @rpc_errors
    def UnarchiveExperiment(
        self, request: experiment_pb2.UnarchiveExperimentRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self.service.unarchive(request.experiment_id)
        return EMPTY

    @rpc_errors
    def DeleteExperiment(
        self, request: experiment_pb2.DeleteExperimentRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        for run_id in self.service.delete(request.experiment_id):
            # Deleted either way; the scheduler's next report for it is NotFound.
            with contextlib.suppress(Exception):
                self.runs.scheduler.cancel_run(run_id)
        return EMPTY


def experiment_service_binding(service: ExperimentService, runs: RunService) -> ServiceBinding:
    return ServiceBinding(
        add_to_server=experiment_pb2_grpc.add_ExperimentServiceServicer_to_server,
        servicer=ExperimentServicer(service, runs),
        full_name="stepwell.v1.ExperimentService",
    )
