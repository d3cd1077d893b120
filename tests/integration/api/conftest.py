"""Fixtures for the API service's integration tests: a real ApiApp on SQLite and on
Postgres, a fake scheduler (a real gRPC server recording StartRun / CancelRun), a
minimal hand-written IR and one compiled by the real kfp SDK.

Test modules reach every helper through a fixture (never by importing this file), so
mypy sees each module under one name.
"""

# No "from __future__ import annotations": kfp reads the component annotations as types.

import copy
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from sqlalchemy import create_engine, text

from stepwell.server import RunningServer, ServiceBinding, start_server
from stepwell.v1 import run_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from stepwell_api.app import ApiApp
from stepwell_api.settings import ApiSettings

HELLO_SPEC: dict[str, Any] = {
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.17.3",
    "pipelineInfo": {"name": "hello"},
    "components": {
        "comp-echo": {
            "executorLabel": "exec-echo",
            "inputDefinitions": {"parameters": {"msg": {"parameterType": "STRING"}}},
        }
    },
    "deploymentSpec": {
        "executors": {
            "exec-echo": {
                "container": {
                    "image": "python:3.11",
                    "command": ["echo"],
                    "args": ["{{$.inputs.parameters['msg']}}"],
                }
            }
        }
    },
    "root": {
        "dag": {
            "tasks": {
                "echo": {
                    "taskInfo": {"name": "echo"},
                    "componentRef": {"name": "comp-echo"},
                    "inputs": {"parameters": {"msg": {"componentInputParameter": "msg"}}},
                }
            }
        },
        "inputDefinitions": {
            "parameters": {
                "msg": {"parameterType": "STRING"},
                "times": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3},
                "ratio": {"parameterType": "NUMBER_DOUBLE", "isOptional": True},
            }
        },
    },
}


@dsl.component(base_image="python:3.11")
def add(a: int, b: float) -> float:
    return a + b


@dsl.pipeline(name="adder", description="Adds two numbers.")
def adder(a: int, b: float = 2.5, label: str = "sum") -> None:
    first = add(a=a, b=b)
    add(a=a, b=first.output)


class FakeScheduler(scheduler_pb2_grpc.SchedulerServicer):
    """Records what the API service sends; can be told to refuse runs."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.canceled: list[str] = []
        self.refuse_with = ""
        self.address = ""
        self._lock = threading.Lock()

    def StartRun(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.refuse_with:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.refuse_with)
        with self._lock:
            already = any(s["run_id"] == request.run_id for s in self.started)
            self.started.append(
                {
                    "run_id": request.run_id,
                    "pipeline_spec": json_format.MessageToDict(request.pipeline_spec),
                    "parameters": json_format.MessageToDict(request.parameters),
                    "pipeline_root": request.pipeline_root,
                    "namespace": request.namespace,
                }
            )
        return scheduler_pb2.StartRunResponse(already_started=already)

    def CancelRun(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.canceled.append(request.run_id)
        return scheduler_pb2.CancelRunResponse()

    def started_ids(self) -> list[str]:
        with self._lock:
            return [s["run_id"] for s in self.started]

    def serve(self, port: int = 0) -> RunningServer:
        """Serves this fake as ``stepwell.v1.Scheduler`` on ``port``."""
        binding = ServiceBinding(scheduler_pb2_grpc.add_SchedulerServicer_to_server, self, "stepwell.v1.Scheduler")
        server = start_server([binding], port=port)
        self.address = server.address
        return server


class RunningApi:
    """An ApiApp started on free ports, and a RunService stub talking to it."""

    def __init__(self, app: ApiApp, server: RunningServer) -> None:
        self.app = app
        self.server = server
        self.channel = grpc.insecure_channel(server.address)
        self.stub = run_pb2_grpc.RunServiceStub(self.channel)

    def query(self, sql: str, **params: Any) -> Any:
        """The first column of the first row of ``sql`` run directly on the database."""
        engine = create_engine(self.app.db.url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql), params).scalar()
        finally:
            engine.dispose()

    def count_rows(self, table: str = "api_runs") -> int:
        return int(self.query(f"SELECT count(*) FROM {table}"))

    def handed_at(self, run_id: str) -> Any:
        return self.query("SELECT handed_at FROM api_runs WHERE run_id = :id", id=run_id)

    def close(self) -> None:
        self.channel.close()
        self.app.stop()


@pytest.fixture
def hello_spec() -> dict[str, Any]:
    """A minimal hand-written 2.1.0 IR: ``msg`` (STRING, required), ``times`` (int, default 3),
    ``ratio`` (double, optional)."""
    return copy.deepcopy(HELLO_SPEC)


@pytest.fixture
def adder_spec(tmp_path: Path) -> dict[str, Any]:
    """The ``adder`` pipeline compiled by kfp 2.17.3: ``a`` (int), ``b`` (2.5), ``label`` ("sum")."""
    path = tmp_path / "adder.yaml"
    compiler.Compiler().compile(adder, str(path))
    return dict(yaml.safe_load(path.read_text()))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file, then a new Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'api.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
def start_scheduler() -> Iterator[Callable[..., tuple[FakeScheduler, RunningServer]]]:
    """Starts fake schedulers (``start_scheduler(port=0)``), stopped after the test."""
    servers: list[RunningServer] = []

    def start(port: int = 0) -> tuple[FakeScheduler, RunningServer]:
        fake = FakeScheduler()
        servers.append(fake.serve(port))
        return fake, servers[-1]

    yield start
    for server in servers:
        server.stop(grace=None)


@pytest.fixture
def fake_scheduler(start_scheduler: Callable[..., tuple[FakeScheduler, RunningServer]]) -> FakeScheduler:
    """A fake scheduler, already serving; its address is ``fake_scheduler.address``."""
    return start_scheduler()[0]


@pytest.fixture
def start_api(db_url: str, tmp_path: Path) -> Iterator[Callable[[str], RunningApi]]:
    """Starts ApiApps on ``db_url`` (``start_api(scheduler_address)``), stopped after the test."""
    started: list[RunningApi] = []

    def start(scheduler_address: str) -> RunningApi:
        settings = ApiSettings(
            home=tmp_path / "home",
            database_url=db_url,
            scheduler_address=scheduler_address,
            handover_interval=0.1,
            handover_max_backoff=0.4,
            scheduler_timeout=5.0,
        )
        app = ApiApp(settings)
        running = RunningApi(app, app.start(port=0, http_port=0))
        started.append(running)
        return running

    yield start
    for running in started:
        if running.app.grpc is not None:
            running.close()


@pytest.fixture
def api(start_api: Callable[[str], RunningApi], fake_scheduler: FakeScheduler) -> RunningApi:
    """The API service on ``db_url`` wired to ``fake_scheduler``."""
    return start_api(fake_scheduler.address)
