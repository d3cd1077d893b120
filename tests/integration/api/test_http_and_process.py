"""The API service's HTTP port, and ``stepwell-api`` as a real OS process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stepwell.v1 import run_pb2, run_pb2_grpc
from stepwell_api.app import ApiApp, create
from stepwell_api.settings import ApiSettings
from tests.processes import free_port, free_ports

Api = Any  # conftest.py's RunningApi
Fake = Any  # conftest.py's FakeScheduler

BIN = Path(sys.executable).parent


def test_healthz_over_http(api: Api) -> None:
    assert api.app.http_port > 0
    reply = httpx.get(f"http://127.0.0.1:{api.app.http_port}/apis/v2beta1/healthz", timeout=5)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"commit_sha", "tag_name", "multi_user", "pipeline_store"}
    assert body["multi_user"] is False
    assert body["pipeline_store"] == "database"


def test_grpc_health_reports_the_run_service(api: Api) -> None:
    with grpc.insecure_channel(api.server.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="stepwell.v1.RunService"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_stop_releases_both_ports_and_a_restart_reuses_the_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    grpc_port, http_port = free_ports(2)
    for _ in range(2):
        app = ApiApp(ApiSettings(home=tmp_path, database_url=db, scheduler_address=f"127.0.0.1:{free_port()}"))
        server = app.start(port=grpc_port, http_port=http_port)
        assert (server.port, app.http_port) == (grpc_port, http_port)
        assert httpx.get(f"http://127.0.0.1:{http_port}/apis/v2beta1/healthz", timeout=5).status_code == 200
        app.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{http_port}/apis/v2beta1/healthz", timeout=2)


def test_embedded_factory_defaults_to_a_free_http_port(tmp_path: Path) -> None:
    app = create({"home": tmp_path, "scheduler_address": f"127.0.0.1:{free_port()}"})
    try:
        server = app.start(0)
        assert app.http_port not in (0, 8888)
        assert server.port > 0
        assert (tmp_path / "api.db").exists()
    finally:
        app.stop()


def _start_process(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [str(BIN / "stepwell-api"), "--port", "0", "--http-port", "0"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"stepwell-api listening on 127\.0\.0\.1:(\d+) http 127\.0\.0\.1:(\d+)\n", line)
    if match is None:
        proc.kill()
        raise AssertionError(f"unexpected first line from stepwell-api: {line!r}")
    return proc, int(match.group(1)), int(match.group(2))


def test_stepwell_api_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        "STEPWELL_HOME": str(tmp_path / "home"),
        "STEPWELL_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "STEPWELL_SCHEDULER_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    proc, grpc_port, http_port = _start_process(tmp_path, env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            runs = run_pb2_grpc.RunServiceStub(channel).ListRuns(run_pb2.ListRunsRequest(), timeout=10)
            assert list(runs.runs) == []
        body = httpx.get(f"http://127.0.0.1:{http_port}/apis/v2beta1/healthz", timeout=5).json()
        assert body["pipeline_store"] == "database"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0


def test_stepwell_api_process_stops_on_sigint(tmp_path: Path, fake_scheduler: Fake) -> None:
    env = {
        "STEPWELL_HOME": str(tmp_path / "home"),
        "STEPWELL_SCHEDULER_ADDRESS": fake_scheduler.address,
    }
    proc, _, _ = _start_process(tmp_path, env)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    assert (tmp_path / "home" / "api.db").exists()
