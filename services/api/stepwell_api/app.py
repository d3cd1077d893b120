"""The API service assembled: database, services, gRPC and HTTP servers, handover and
trigger loops.

Mount it in-process (the embedded stack does this)::

    settings = ApiSettings(database_url="sqlite:///...", scheduler_address="")
    app = ApiApp(settings)
    grpc_server = app.start(port=0, http_port=0)   # upgrades the database first
    settings.scheduler_address = "127.0.0.1:<scheduler port>"   # may be set afterwards
    ... grpc_server.address, app.http_port ...
    app.stop()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from stepwell.server import Database, RunningServer, start_server, upgrade
from stepwell.storage import S3Config, StoreRouter
from stepwell.v1 import experiment_pb2, pipeline_pb2, recurring_run_pb2, run_pb2
from stepwell_api.experiment_servicer import experiment_service_binding
from stepwell_api.experiments import ExperimentService
from stepwell_api.handover import HandoverLoop
from stepwell_api.http import HttpServer, build_http_app
from stepwell_api.pipeline_servicer import pipeline_service_binding
from stepwell_api.pipelines import PipelineService
from stepwell_api.recurring import RecurringRunService
from stepwell_api.recurring_servicer import recurring_run_service_binding
from stepwell_api.run_artifacts import MetadataArtifactCleaner
from stepwell_api.scheduler_client import GrpcScheduler
from stepwell_api.service import RunService
from stepwell_api.servicer import run_service_binding
from stepwell_api.settings import ApiSettings
from stepwell_api.trigger import TriggerLoop

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_api"


class ApiApp:
    """The API service: owns its database, servers and background loop."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        # Every hot call is one or two statements; a pre-ping round trip per
        # checkout would add a third (see stepwell.server.db.make_engine).
        self.db = Database(settings.database_url_for("api"), pre_ping=False)
        # Lazy: the address is read on the first call, so it may be set after start().
        self.scheduler = GrpcScheduler(lambda: self.settings.scheduler_address, settings.scheduler_timeout)
        self.pipelines = PipelineService(self.db, settings.namespace, max_upload_bytes=settings.max_upload_bytes)
        self.experiments = ExperimentService(self.db, settings.namespace)
        s3 = None
        if settings.s3_endpoint:
            s3 = S3Config(
                endpoint=settings.s3_endpoint,
                access_key=settings.s3_access_key,
                secret_key=settings.s3_secret_key,
                region=settings.s3_region,
                secure=settings.s3_secure,
            )
        self.artifacts = MetadataArtifactCleaner(
            lambda: self.settings.metadata_address, StoreRouter(s3), settings.scheduler_timeout
        )
        self.service = RunService(
            self.db,
            self.scheduler,
            default_namespace=settings.namespace,
            pipelines=self.pipelines,
            experiments=self.experiments,
            artifacts=self.artifacts,
        )
        self.recurring = RecurringRunService(self.db, self.service)
        self.handover = HandoverLoop(
            self.service, interval=settings.handover_interval, max_backoff=settings.handover_max_backoff
        )
        self.trigger = TriggerLoop(self.recurring, interval=settings.trigger_interval, on_fired=self.handover.wake)
        # One servicer per service, shared by the gRPC server and the REST gateway.
        self.bindings = [
            run_service_binding(self.service),
            pipeline_service_binding(self.pipelines),
            experiment_service_binding(self.experiments, self.service),
            recurring_run_service_binding(self.recurring),
        ]
        descriptors = [
            run_pb2.DESCRIPTOR.services_by_name["RunService"],
            pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"],
            experiment_pb2.DESCRIPTOR.services_by_name["ExperimentService"],
            recurring_run_pb2.DESCRIPTOR.services_by_name["RecurringRunService"],
        ]
        services = [(d, b.servicer) for d, b in zip(descriptors, self.bindings, strict=True)]
        self.http = HttpServer(build_http_app(settings, services), host=settings.host)
        self.grpc: RunningServer | None = None

    @property
    def http_port(self) -> int:
        """The bound HTTP port (0 before :meth:`start`)."""
        return self.http.port

    @property
    def port(self) -> int:
        """The bound gRPC port (0 before :meth:`start`)."""
        return self.grpc.port if self.grpc is not None else 0

    def migrate(self) -> None:
        """Brings the API service's tables up to date."""
        upgrade(self.db.engine, MIGRATIONS_DIR, VERSION_TABLE)

    def start(self, port: int | None = None, http_port: int | None = None) -> RunningServer:
        """Upgrades the database, starts the gRPC and HTTP servers and the handover loop.

        ``port`` / ``http_port`` default to the settings; 0 picks free ports (read them
        back from the result's ``port`` and :attr:`http_port`).
        """
        self.migrate()
        grpc_port = self.settings.port if port is None else port
        self.grpc = start_server(self.bindings, port=grpc_port, host=self.settings.host)
        try:
            self.http.requested_port = self.settings.http_port if http_port is None else http_port
            self.http.start()
        except BaseException:
            self.grpc.stop(grace=None)
            self.grpc = None
            raise
        self.handover.start()
        self.trigger.start()
        return self.grpc

    def stop(self, grace: float = 1.0) -> None:
        """Stops accepting calls, finishes those in flight, and releases everything."""
        if self.grpc is not None:
            self.grpc.stop(grace)
            self.grpc = None
        self.trigger.stop()
        self.handover.stop()
        self.http.stop()
        self.scheduler.close()
        self.artifacts.close()
        self.db.dispose()


def create(overrides: dict[str, Any] | None = None) -> ApiApp:
    """The ``stepwell.services`` entry point the embedded stack calls.

    ``overrides`` are settings fields (``home``, ``database_url``, ``scheduler_address``
    ...) taking precedence over the environment. Unless they name ``http_port``, the
    HTTP server takes a free port when :meth:`ApiApp.start` is given none, so several
    embedded stacks never fight over 8888.
    """
    values = dict(overrides or {})
    values.setdefault("http_port", 0)
    return ApiApp(ApiSettings(**values))
