"""A real scheduler, a real metadata service and an in-test API peer that records reports.

Two back ends: SQLite files + a local artifact folder, and Postgres + a real S3 server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwell.server import ServiceBinding, make_channel, start_server
from stepwell.v1 import metadata_pb2_grpc, run_pb2_grpc, scheduler_pb2_grpc
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings
from stepwell_scheduler.app import SchedulerApp
from stepwell_scheduler.settings import SchedulerSettings
from tests.integration.scheduler.stack import RecordingRunService, Stack


@pytest.fixture(params=["sqlite-folder", "postgres-s3"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    backend = request.param
    s3 = None
    if backend == "sqlite-folder":
        sched_db = f"sqlite:///{tmp_path / 'scheduler.db'}"
        md_db = f"sqlite:///{tmp_path / 'metadata.db'}"
        artifact_root = str(tmp_path / "artifacts")
        extra: dict[str, Any] = {}
    else:
        pg = request.getfixturevalue("fresh_pg_url")
        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        sched_db = md_db = pg
        artifact_root = f"s3://{bucket}/pipelines"
        extra = {
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "s3_region": s3.region,
        }

    metadata = MetadataApp(MetadataSettings(home=tmp_path / "home"), database_url=md_db)
    md_server = metadata.start(port=0)
    api = RecordingRunService()
    api_server = start_server(
        [ServiceBinding(run_pb2_grpc.add_RunServiceServicer_to_server, api, "stepwell.v1.RunService")], port=0
    )
    settings = SchedulerSettings(
        home=tmp_path / "home",
        artifact_root=artifact_root,
        max_parallel_tasks=4,
        report_retry_seconds=0.2,
        **extra,
    )
    scheduler = SchedulerApp(settings, database_url=sched_db)
    server = scheduler.start(port=0)
    # Peer addresses are filled in after the servers started, as the embedded stack does.
    settings.metadata_address = md_server.address
    settings.api_address = api_server.address
    channel = make_channel(server.address)
    md_channel = make_channel(md_server.address)
    stack = Stack(
        scheduler=scheduler,
        scheduler_stub=scheduler_pb2_grpc.SchedulerStub(channel),
        metadata_stub=metadata_pb2_grpc.MetadataStub(md_channel),
        api=api,
        artifact_root=artifact_root,
        backend=backend,
        s3=s3,
    )
    try:
        yield stack
    finally:
        channel.close()
        md_channel.close()
        scheduler.stop(kill_tasks=True)
        api_server.stop()
        metadata.stop()
