"""A ``retryPolicy`` counts failures, not attempts: an attempt lost when the scheduler was
killed does not use up a retry. Real ``stepwell-scheduler`` processes and a real kill."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stepwell.v1 import common_pb2
from tests.integration.durability.conftest import Peers
from tests.integration.durability.harness import Scheduler

# The first execution outlives the scheduler that started it (and is lost to it), the
# second fails, the third succeeds.
FLAKY = r"""
import os, sys, time
counter, out = sys.argv[1:3]
fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, b"x")
os.close(fd)
n = os.path.getsize(counter)
if n == 1:
    time.sleep(8)
if n == 2:
    sys.exit("a genuine failure")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    f.write(str(n))
"""


def _flaky_pipeline(counter: Path) -> dict[str, Any]:
    return {
        "pipelineInfo": {"name": "retry-budget"},
        "schemaVersion": "2.1.0",
        "deploymentSpec": {
            "executors": {
                "exec-flaky": {
                    "container": {
                        "image": "python:3.11",
                        "command": ["python3", "-c", FLAKY],
                        "args": [str(counter), "{{$.outputs.parameters['n'].output_file}}"],
                    }
                }
            }
        },
        "components": {
            "comp-flaky": {
                "executorLabel": "exec-flaky",
                "outputDefinitions": {"parameters": {"n": {"parameterType": "STRING"}}},
            }
        },
        "root": {
            # The harness always passes a salt; this pipeline takes it and ignores it.
            "inputDefinitions": {"parameters": {"salt": {"parameterType": "STRING"}}},
            "dag": {
                "tasks": {
                    "flaky": {
                        "taskInfo": {"name": "flaky"},
                        "componentRef": {"name": "comp-flaky"},
                        "retryPolicy": {"maxRetryCount": 1, "backoffDuration": "0s"},
                    }
                }
            }
        },
    }


def test_an_attempt_lost_to_a_crash_uses_no_retry(sqlite_peers: Peers, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    counter = tmp_path / "executions"
    first = Scheduler(sqlite_peers.env(db_url, STEPWELL_SCHEDULER_FAILPOINTS="submitted"))
    try:
        first.start_run("run-r", _flaky_pipeline(counter), salt="unused")
        first.wait_killed(timeout=20)
    finally:
        first.close()
    deadline = time.monotonic() + 20
    while not counter.exists():  # the lost attempt starts (and keeps running)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert counter.read_bytes() == b"x"

    second = Scheduler(sqlite_peers.env(db_url))
    try:
        status = second.wait(["run-r"], timeout=60)["run-r"]
    finally:
        second.close()
    assert status.state == common_pb2.SUCCEEDED, (status.error, second.log())
    # Lost, failed, retried: three executions, and the task's result is the third's.
    assert counter.read_bytes() == b"xxx"
    (task,) = [t for t in status.task_details if t.task_id == "flaky"]
    assert task.outputs.parameters["n"] == "3"
