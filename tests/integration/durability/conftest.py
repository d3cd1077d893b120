"""Peers of the scheduler processes under test: a real metadata service and a recording API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stepwell.server import ServiceBinding, start_server
from stepwell.v1 import run_pb2_grpc
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings
from tests.integration.scheduler.stack import RecordingRunService


@dataclass
class Peers:
    md_address: str
    api: RecordingRunService
    root: Path

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        """Environment of a ``stepwell-scheduler`` process using ``database_url``."""
        return {
            "STEPWELL_HOME": str(self.root / "home"),
            "STEPWELL_SCHEDULER_DATABASE_URL": database_url,
            "STEPWELL_DATABASE_URL": "",
            "STEPWELL_METADATA_ADDRESS": self.md_address,
            "STEPWELL_API_ADDRESS": self.api_address,
            "STEPWELL_ARTIFACT_ROOT": str(self.root / "artifacts"),
            "STEPWELL_MAX_PARALLEL_TASKS": "4",
            "STEPWELL_REPORT_RETRY_SECONDS": "0.2",
            "STEPWELL_SCHEDULER_LEASE_SECONDS": "1.5",
            **extra,
        }

    api_address: str = ""


def _peers(root: Path, md_url: str) -> Iterator[Peers]:
    metadata = MetadataApp(MetadataSettings(home=root / "md"), database_url=md_url)
    md_server = metadata.start(port=0)
    api = RecordingRunService()
    api_server = start_server(
        [ServiceBinding(run_pb2_grpc.add_RunServiceServicer_to_server, api, "stepwell.v1.RunService")], port=0
    )
    try:
        yield Peers(md_address=md_server.address, api=api, root=root, api_address=api_server.address)
    finally:
        api_server.stop()
        metadata.stop()


@pytest.fixture
def sqlite_peers(tmp_path: Path) -> Iterator[Peers]:
    """Peers with the metadata service on SQLite."""
    yield from _peers(tmp_path, f"sqlite:///{tmp_path / 'md.db'}")


@pytest.fixture
def pg_peers(tmp_path: Path, fresh_pg_url: str) -> Iterator[Peers]:
    """Peers with the metadata service on the test's Postgres database."""
    yield from _peers(tmp_path, fresh_pg_url)
