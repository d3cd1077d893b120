"""Compiling corpus pipelines with the real ``kfp`` and running them on a Stepwell stack."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp import compiler

from stepwell.server import ServiceBinding, make_channel, start_server
from stepwell.v1 import (
    common_pb2,
    metadata_pb2_grpc,
    run_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings
from stepwell_scheduler.app import SchedulerApp
from stepwell_scheduler.settings import SchedulerSettings
from tests.integration.scheduler.stack import RecordingRunService

FINAL = {common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED}


def compile_pipeline(build: Callable[[], Any], folder: Path) -> dict[str, Any]:
    """Compiles the pipeline ``build()`` returns with kfp's compiler; the IR as a dict."""
    pipeline = build()
    path = folder / f"{build.__name__}-{uuid.uuid4().hex[:6]}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return dict(yaml.safe_load(path.read_text()))


@dataclass
class Corpus:
    root: Path
    scheduler: SchedulerApp
    stub: scheduler_pb2_grpc.SchedulerStub
    metadata: MetadataApp
    metadata_stub: metadata_pb2_grpc.MetadataStub
    artifact_root: str
    closers: list[Callable[[], None]] = field(default_factory=list)

    def start(self, spec: dict[str, Any], parameters: dict[str, Any] | None = None, **options: Any) -> str:
        run_id = uuid.uuid4().hex
        request = scheduler_pb2.StartRunRequest(run_id=run_id)
        json_format.ParseDict(spec, request.pipeline_spec)
        if parameters:
            json_format.ParseDict(parameters, request.parameters)
        if options:
            json_format.ParseDict(options, request.options)
        self.stub.StartRun(request, timeout=30)
        return run_id

    def status(self, run_id: str) -> scheduler_pb2.RunStatus:
        return self.stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=10)

    def wait(self, run_id: str, timeout: float = 90.0) -> scheduler_pb2.RunStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status.state in FINAL:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {common_pb2.RuntimeState.Name(status.state)}")
            time.sleep(0.05)

    def run(self, spec: dict[str, Any], parameters: dict[str, Any] | None = None, **options: Any) -> scheduler_pb2.RunStatus:
        return self.wait(self.start(spec, parameters, **options))

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()


def start_corpus_stack(root: Path, artifact_root: str = "", **extra: Any) -> Corpus:
    metadata = MetadataApp(MetadataSettings(home=root / "home"), database_url=f"sqlite:///{root / 'metadata.db'}")
    md_server = metadata.start(port=0)
    api = RecordingRunService()
    api_server = start_server(
        [ServiceBinding(run_pb2_grpc.add_RunServiceServicer_to_server, api, "stepwell.v1.RunService")], port=0
    )
    artifact_root = artifact_root or str(root / "artifacts")
    settings = SchedulerSettings(
        home=root / "home", artifact_root=artifact_root, max_parallel_tasks=4, report_retry_seconds=0.2, **extra
    )
    scheduler = SchedulerApp(settings, database_url=f"sqlite:///{root / 'scheduler.db'}")
    server = scheduler.start(port=0)
    settings.metadata_address = md_server.address
    settings.api_address = api_server.address
    channel = make_channel(server.address)
    md_channel = make_channel(md_server.address)
    corpus = Corpus(
        root=root,
        scheduler=scheduler,
        stub=scheduler_pb2_grpc.SchedulerStub(channel),
        metadata=metadata,
        metadata_stub=metadata_pb2_grpc.MetadataStub(md_channel),
        artifact_root=artifact_root,
    )
    corpus.closers += [
        metadata.stop,
        api_server.stop,
        lambda: scheduler.stop(kill_tasks=True),
        md_channel.close,
        channel.close,
    ]
    return corpus


def tasks(status: scheduler_pb2.RunStatus) -> dict[str, Any]:
    """Task details by task id."""
    return {t.task_id: t for t in status.task_details}


def state(status: Any) -> str:
    return common_pb2.RuntimeState.Name(status.state)


def output(status: scheduler_pb2.RunStatus, name: str = "Output") -> Any:
    return json_format.MessageToDict(status.outputs.parameters).get(name)


def task_output(detail: Any, name: str = "Output") -> Any:
    return json_format.MessageToDict(detail.outputs.parameters).get(name)
