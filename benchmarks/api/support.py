"""What the API benchmarks share: a scratch Postgres database, the API service as its
own OS process (``stepwell-api``), and a scheduler stand-in that acknowledges StartRun
at once, so the numbers are the API service's own."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from stepwell.server import ServiceBinding, start_server
from stepwell.v1 import scheduler_pb2, scheduler_pb2_grpc

BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("STEPWELL_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

SPEC: dict[str, Any] = {
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.17.3",
    "pipelineInfo": {"name": "bench"},
    "components": {
        "comp-echo": {
            "executorLabel": "exec-echo",
            "inputDefinitions": {"parameters": {"msg": {"parameterType": "STRING"}}},
            "outputDefinitions": {"parameters": {"Output": {"parameterType": "STRING"}}},
        }
    },
    "deploymentSpec": {
        "executors": {
            "exec-echo": {"container": {"image": "python:3.11", "command": ["echo"], "args": ["{{$.inputs.parameters['msg']}}"]}}
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
        "inputDefinitions": {"parameters": {"msg": {"parameterType": "STRING", "defaultValue": "hi"}}},
    },
}


class AckScheduler(scheduler_pb2_grpc.SchedulerServicer):
    """Acknowledges every StartRun and CancelRun; counts them."""

    def __init__(self) -> None:
        self.started = 0

    def StartRun(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.started += 1
        return scheduler_pb2.StartRunResponse()

    def CancelRun(self, request: Any, context: grpc.ServicerContext) -> Any:
        return scheduler_pb2.CancelRunResponse()


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new Postgres database (dropped afterwards); yields its URL."""
    name = "stepwell_bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextmanager
def ack_scheduler() -> Iterator[tuple[AckScheduler, str]]:
    fake = AckScheduler()
    server = start_server([ServiceBinding(scheduler_pb2_grpc.add_SchedulerServicer_to_server, fake, "stepwell.v1.Scheduler")])
    try:
        yield fake, server.address
    finally:
        server.stop(grace=None)


class ApiProcess(str):
    """The gRPC address of a running ``stepwell-api`` (a ``str``), with its process id."""

    pid: int

    def cpu_seconds(self) -> float:
        """User plus system CPU time the API process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def api_process(
    database_url: str, scheduler_address: str, home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ApiProcess]:
    """``stepwell-api`` on free ports; yields its gRPC address (with its pid)."""
    env = {
        **os.environ,
        "STEPWELL_HOME": str(home),
        "STEPWELL_DATABASE_URL": database_url,
        "STEPWELL_SCHEDULER_ADDRESS": scheduler_address,
        "STEPWELL_LOG_LEVEL": "WARNING",
        "STEPWELL_HANDOVER_INTERVAL": "5",
        **(extra_env or {}),
    }
    proc = subprocess.Popen([str(BIN / "stepwell-api"), "--port", "0", "--http-port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"stepwell-api did not start: {line!r}")
    try:
        address = ApiProcess(f"127.0.0.1:{match.group(1)}")
        address.pid = proc.pid
        yield address
    finally:
        proc.terminate()
        proc.wait(15)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with create_engine(ADMIN_URL).connect() as conn:
        pg = str(conn.execute(text("SHOW server_version")).scalar())
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, Python {platform.python_version()}, "
            f"Postgres {pg}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_ready(address: str, timeout: float = 30.0) -> None:
    """Waits until the gRPC health service at ``address`` answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} is not serving after {timeout:.0f}s")
            time.sleep(0.05)
