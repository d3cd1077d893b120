"""A task whose attempt folder or task file cannot be made fails with an error that says
so, and its run ends. The run's folder of task files is made by the engine (once per
run), and what that raised fails the task at its start; the task file is written by the
fork server and the attempt folder is made in the task's process, which writes why it
could not beside its task file for the harvest to read. Real scheduler and task
processes, both back ends."""

from __future__ import annotations

import uuid

from stepwell.v1 import common_pb2, run_pb2, scheduler_pb2
from tests.integration.scheduler.pipelines import three_task_pipeline
from tests.integration.scheduler.stack import Stack


def _first_task_fails_to_start(stack: Stack, run_id: str) -> tuple[run_pb2.TaskDetail, scheduler_pb2.RunStatus]:
    """Runs the three-task pipeline; returns its first task, which must have failed with a
    start error, and the run's status, which must be FAILED."""
    spec = three_task_pipeline()
    # No cache lookup: the claim gives the task its attempt and begins the write.
    spec["root"]["dag"]["tasks"]["produce"]["cachingOptions"] = {"enableCache": False}
    stack.start(run_id, spec, {"n": 3})
    status = stack.wait(run_id, timeout=60)
    assert status.state == common_pb2.FAILED, status
    (produce,) = [t for t in status.task_details if t.task_id == "produce"]
    assert produce.state == common_pb2.FAILED
    assert "could not start the task" in produce.error, produce.error
    return produce, status


def test_an_attempt_folder_that_cannot_be_made_fails_the_task(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    # A file where the first task's folder goes.
    tasks = stack.scheduler.engine.work_dir / "runs" / run_id / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "produce").write_text("not a folder")
    produce, status = _first_task_fails_to_start(stack, run_id)
    assert str(tasks / "produce") in produce.error, produce.error
    assert not [t for t in status.task_details if t.task_id == "consume" and t.state == common_pb2.SUCCEEDED]


def test_a_task_file_that_cannot_be_written_fails_the_task(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    # A file where the run's task files go.
    run_dir = stack.scheduler.engine.work_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "task-files").write_text("not a folder")
    produce, _status = _first_task_fails_to_start(stack, run_id)
    assert "task-files" in produce.error, produce.error
