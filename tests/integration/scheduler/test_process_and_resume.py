"""``stepwell-scheduler`` as a real OS process: serving, stopping, and resuming after a kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from stepwell.server import ServiceBinding, make_channel, start_server
from stepwell.v1 import common_pb2, run_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.settings import MetadataSettings
from tests.integration.scheduler.pipelines import three_task_pipeline
from tests.integration.scheduler.stack import RecordingRunService
from tests.processes import ServiceProcess, start_service

COUNT_AND_SLEEP = r"""
import sys, time
with open(sys.argv[1], "a") as f:
    f.write("x")
time.sleep(float(sys.argv[2]))
"""


def _chain_pipeline(marker_dir: str) -> dict[str, Any]:
    """first (quick) -> slow (sleeps) -> last (quick); each appends to its own counter file."""

    def task(name: str, seconds: float, after: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "taskInfo": {"name": name},
            "componentRef": {"name": "comp-count"},
            "inputs": {
                "parameters": {
                    "file": {"runtimeValue": {"constant": f"{marker_dir}/{name}.count"}},
                    "seconds": {"runtimeValue": {"constant": seconds}},
                }
            },
        }
        if after:
            spec["dependentTasks"] = [after]
        return spec

    return {
        "pipelineInfo": {"name": "resumable"},
        "schemaVersion": "2.1.0",
        "deploymentSpec": {
            "executors": {
                "exec-count": {
                    "container": {
                        "image": "python:3.11",
                        "command": ["python3", "-c", COUNT_AND_SLEEP],
                        "args": ["{{$.inputs.parameters['file']}}", "{{$.inputs.parameters['seconds']}}"],
                    }
                }
            }
        },
        "components": {
            "comp-count": {
                "executorLabel": "exec-count",
                "inputDefinitions": {
                    "parameters": {"file": {"parameterType": "STRING"}, "seconds": {"parameterType": "NUMBER_DOUBLE"}}
                },
            }
        },
        "root": {
            "dag": {
                "tasks": {
                    "first": task("first", 0, None),
                    "slow": task("slow", 3, "first"),
                    "last": task("last", 0, "slow"),
                }
            }
        },
    }


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    metadata = MetadataApp(MetadataSettings(home=tmp_path / "md"), database_url=f"sqlite:///{tmp_path / 'md.db'}")
    md_server = metadata.start(port=0)
    api = RecordingRunService()
    api_server = start_server(
        [ServiceBinding(run_pb2_grpc.add_RunServiceServicer_to_server, api, "stepwell.v1.RunService")], port=0
    )
    env = {
        "STEPWELL_HOME": str(tmp_path / "home"),
        "STEPWELL_METADATA_ADDRESS": md_server.address,
        "STEPWELL_API_ADDRESS": api_server.address,
        "STEPWELL_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "STEPWELL_DATABASE_URL": "",
    }
    try:
        yield {"env": env, "api": api}
    finally:
        api_server.stop()
        metadata.stop()


def _start(stub: scheduler_pb2_grpc.SchedulerStub, run_id: str, spec: dict[str, Any], params: dict[str, Any] | None = None) -> None:
    request = scheduler_pb2.StartRunRequest(run_id=run_id)
    json_format.ParseDict(spec, request.pipeline_spec)
    if params:
        json_format.ParseDict(params, request.parameters)
    stub.StartRun(request, timeout=30)


def _start_chain(peers: dict[str, Any], markers: Path) -> tuple[ServiceProcess, str]:
    """A scheduler process with :func:`_chain_pipeline` started on it (counters in ``markers``)."""
    markers.mkdir()
    service = start_service("scheduler", ["--port", "0"], peers["env"])
    run_id = uuid.uuid4().hex
    try:
        with make_channel(service.address) as channel:
            _start(scheduler_pb2_grpc.SchedulerStub(channel), run_id, _chain_pipeline(str(markers)))
    except BaseException:
        service.stop()
        raise
    return service, run_id


def _final_on(service: ServiceProcess, run_id: str) -> scheduler_pb2.RunStatus:
    """The run's final status, as the scheduler process ``service`` reports it."""
    with make_channel(service.address) as channel:
        return _wait_final(scheduler_pb2_grpc.SchedulerStub(channel), run_id)


def _status(stub: scheduler_pb2_grpc.SchedulerStub, run_id: str) -> scheduler_pb2.RunStatus:
    return stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=10)


def _wait_final(stub: scheduler_pb2_grpc.SchedulerStub, run_id: str, timeout: float = 60) -> scheduler_pb2.RunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = _status(stub, run_id)
        if status.state in (common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED):
            return status
        time.sleep(0.05)
    raise TimeoutError(run_id)


def test_scheduler_process_runs_a_pipeline_and_stops_on_sigterm(peers: dict[str, Any]) -> None:
    service: ServiceProcess = start_service("scheduler", ["--port", "0"], peers["env"])
    try:
        assert any(f"stepwell-scheduler listening on 127.0.0.1:{service.port}" in line for line in service.log)
        with make_channel(service.address) as channel:
            stub = scheduler_pb2_grpc.SchedulerStub(channel)
            run_id = uuid.uuid4().hex
            _start(stub, run_id, three_task_pipeline(), {"n": 3})
            watched = list(stub.WatchRun(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=60))
            assert watched[-1].state == common_pb2.SUCCEEDED
            assert json_format.MessageToDict(watched[-1].outputs.parameters) == {"summary": "tag-3:3"}
            assert len(watched) > 1
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(15) == 0
    finally:
        service.stop()


def test_killed_scheduler_resumes_without_rerunning_finished_tasks(peers: dict[str, Any], tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    first, run_id = _start_chain(peers, markers)
    try:
        with make_channel(first.address) as channel:
            stub = scheduler_pb2_grpc.SchedulerStub(channel)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                tasks = {t.task_id: t.state for t in _status(stub, run_id).task_details}
                if tasks.get("slow") == common_pb2.RUNNING:
                    break
                time.sleep(0.05)
            assert tasks.get("slow") == common_pb2.RUNNING
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    finally:
        first.stop()

    second = start_service("scheduler", ["--port", "0"], peers["env"])
    try:
        status = _final_on(second, run_id)
        assert status.state == common_pb2.SUCCEEDED, status.error
        for name in ("first", "slow", "last"):
            assert (markers / f"{name}.count").read_text() == "x", f"{name} ran more than once"
        assert {t.task_id for t in status.task_details} == {"first", "slow", "last"}
    finally:
        second.stop()


def test_a_result_record_cut_short_is_no_result_at_a_takeover(peers: dict[str, Any], tmp_path: Path) -> None:
    """The launcher writes its result record in place (no temporary file and rename): a
    record cut short, by a kill while it was written, must read as no result, so that the
    next scheduler runs the task again rather than harvest it as failed."""
    markers = tmp_path / "markers"
    home = Path(peers["env"]["STEPWELL_HOME"])
    first, run_id = _start_chain(peers, markers)
    try:
        deadline = time.monotonic() + 30
        pid = 0
        while not pid and time.monotonic() < deadline:
            with sqlite3.connect(home / "scheduler.db") as db:
                row = db.execute(
                    "SELECT pid FROM sched_tasks WHERE run_id = ? AND qualified_name = 'slow' AND state = 'RUNNING'",
                    (run_id,),
                ).fetchone()
            pid = int(row[0]) if row else 0
            time.sleep(0.05)
        assert pid > 0
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
    finally:
        first.stop()
    # The task's launcher (a session leader, with its command) dies while writing.
    os.killpg(pid, signal.SIGKILL)
    attempt = home / "scheduler" / "runs" / run_id / "tasks" / "slow" / "a1"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    (attempt / "result.json").write_text('{"status": "SUCC')

    second = start_service("scheduler", ["--port", "0"], peers["env"])
    try:
        status = _final_on(second, run_id)
        assert status.state == common_pb2.SUCCEEDED, status.error
        assert (markers / "slow.count").read_text() == "xx"  # its lost attempt, and one more
        assert (markers / "first.count").read_text() == "x"
        assert (markers / "last.count").read_text() == "x"
    finally:
        second.stop()
