"""Helpers for the scheduler integration tests: the recording API peer and the service stack."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from stepwell.v1 import (
    common_pb2,
    metadata_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from stepwell_scheduler.app import SchedulerApp


class RecordingRunService(run_pb2_grpc.RunServiceServicer):
    """The API side of the contract: remembers every ReportRunStatus call."""

    def __init__(self) -> None:
        self.reports: list[run_pb2.ReportRunStatusRequest] = []
        self.lock = threading.Lock()

    def ReportRunStatus(self, request: Any, context: grpc.ServicerContext) -> run_pb2.ReportRunStatusResponse:
        with self.lock:
            self.reports.append(request)
        return run_pb2.ReportRunStatusResponse()

    def for_run(self, run_id: str) -> list[run_pb2.ReportRunStatusRequest]:
        with self.lock:
            return [r for r in self.reports if r.run_id == run_id]


@dataclass
class Stack:
    scheduler: SchedulerApp
    scheduler_stub: scheduler_pb2_grpc.SchedulerStub
    metadata_stub: metadata_pb2_grpc.MetadataStub
    api: RecordingRunService
    artifact_root: str
    backend: str
    s3: Any = None
    closers: list[Any] = field(default_factory=list)

    def start(self, run_id: str, spec: dict[str, Any], parameters: dict[str, Any] | None = None) -> bool:
        request = scheduler_pb2.StartRunRequest(run_id=run_id)
        json_format.ParseDict(spec, request.pipeline_spec)
        if parameters:
            json_format.ParseDict(parameters, request.parameters)
        return bool(self.scheduler_stub.StartRun(request, timeout=30).already_started)

    def wait(self, run_id: str, timeout: float = 60.0) -> scheduler_pb2.RunStatus:
        deadline = time.monotonic() + timeout
        final = {common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED}
        while True:
            status = self.scheduler_stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=10)
            if status.state in final:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {common_pb2.RuntimeState.Name(status.state)}")
            time.sleep(0.05)


def struct_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(value)


