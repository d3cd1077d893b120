"""The embedded stack in this process, and ``stepwell server`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from stepwell.cli.embedded import EmbeddedStack
from stepwell.cli.loading import find_pipeline
from stepwell.client import Client, pipeline_spec_from_func
from stepwell.errors import InvalidArgument
from stepwell.v1 import run_pb2, run_pb2_grpc
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    with EmbeddedStack(home=tmp_path / "home") as running:
        yield running


def test_bad_input_through_grpc_is_invalid_argument_and_records_nothing(stack: EmbeddedStack) -> None:
    spec = pipeline_spec_from_func(find_pipeline(str(ROOT / "examples" / "quickstart.py")))
    bad_spec = dict(spec, schemaVersion="2.0.0")
    with Client(stack.api_address) as client:
        for kwargs, message in [
            ({"pipeline_spec": spec, "arguments": {"nope": 1}}, "unknown parameter(s) 'nope'"),
            ({"pipeline_spec": spec, "arguments": {"rows": "ten"}}, "parameter 'rows' must be an integer"),
            ({"pipeline_spec": bad_spec}, "schemaVersion '2.0.0'"),
        ]:
            with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
                client.create_run(**kwargs)  # type: ignore[arg-type]
        assert client.list_runs().runs == []
    # The raw gRPC status is INVALID_ARGUMENT.
    with grpc.insecure_channel(stack.api_address) as channel:
        stub = run_pb2_grpc.RunServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateRun(run_pb2.CreateRunRequest(run=run_pb2.Run(display_name="x")))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_run_through_client_and_list(stack: EmbeddedStack) -> None:
    pipeline = find_pipeline(str(ROOT / "examples" / "quickstart.py"))
    with Client(stack.api_address) as client:
        run = client.create_run_from_pipeline_func(pipeline, arguments={"rows": 3}, run_name="mine")
        assert run.state in ("PENDING", "RUNNING")
        final = client.wait_for_run_completion(run.run_id, timeout=120)
        assert final.state == "SUCCEEDED"
        assert final.display_name == "mine"
        listed = client.list_runs()
        assert [r.run_id for r in listed.runs] == [run.run_id]


def test_stepwell_server_answers_healthz(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(4)]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "stepwell"), "server", "--port", str(ports[0]), "--http-port", str(ports[1]),
         "--scheduler-port", str(ports[2]), "--metadata-port", str(ports[3])],
        env={**os.environ, "STEPWELL_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/apis/v2beta1/healthz", timeout=2) as reply:
                    body = json.loads(reply.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert body is not None, "stepwell server never answered healthz"
        assert body["multi_user"] is False and body["pipeline_store"] == "database"
        # The API gRPC port takes runs too.
        with Client(f"127.0.0.1:{ports[0]}") as client:
            assert client.list_runs().runs == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
