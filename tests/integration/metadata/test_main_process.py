"""``stepwell-metadata`` and ``python -m stepwell_metadata`` as real OS processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stepwell.server import start_server
from stepwell.v1 import metadata_pb2 as pb
from stepwell.v1 import metadata_pb2_grpc
from stepwell_metadata.app import build, create
from stepwell_metadata.settings import MetadataSettings
from tests.processes import start_service


def check_serving(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "stepwell.v1.Metadata"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = metadata_pb2_grpc.MetadataStub(channel)
        ctx = stub.GetOrCreateContext(
            pb.GetOrCreateContextRequest(type="system.Pipeline", name="hello"), timeout=10
        )
        assert ctx.id > 0


def test_console_script_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        "STEPWELL_HOME": str(tmp_path / "home"),
        "STEPWELL_DATABASE_URL": "",
        "STEPWELL_METADATA_DATABASE_URL": "",
    }
    service = start_service("metadata", ["--port", "0"], env)
    try:
        assert service.port > 0
        check_serving(service.address)
        # The default database is a SQLite file under STEPWELL_HOME.
        assert (tmp_path / "home" / "metadata.db").exists()
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(15) == 0
    finally:
        service.stop()
    assert any("stopped" in line for line in service.log), "".join(service.log)


def test_python_dash_m_on_the_test_database(db_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stepwell_metadata", "--port", "0", "--database-url", db_url],
        env={**os.environ, "STEPWELL_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = proc.stdout.readline()
        while not line.startswith("stepwell-metadata listening on") and time.monotonic() < deadline:
            assert line, "the process exited before it listened"
            line = proc.stdout.readline()
        match = re.fullmatch(r"stepwell-metadata listening on (127\.0\.0\.1:\d+)\n", line)
        assert match, line
        check_serving(match.group(1))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mounted_on_a_shared_server(tmp_path: Path) -> None:
    """The embedded stack mounts the bindings on a server that serves other services too."""
    bindings, close = build(MetadataSettings(home=tmp_path))
    server = start_server(bindings, port=0)
    try:
        check_serving(server.address)
    finally:
        server.stop()
        close()


def test_embedded_factory(tmp_path: Path) -> None:
    """``create`` is what the embedded stack loads from the ``stepwell.services`` entry point."""
    app = create({"home": tmp_path, "scheduler_address": "127.0.0.1:1", "unknown_key": 1})
    server = app.start(0)
    try:
        assert server.port > 0
        check_serving(f"127.0.0.1:{server.port}")
        assert (tmp_path / "metadata.db").exists()
    finally:
        app.stop()
