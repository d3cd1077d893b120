"""``convert.RunWatch``: merging a watcher's GetRun replies into whole runs."""

from __future__ import annotations

from stepwell.client.convert import RunWatch
from stepwell.v1 import common_pb2, run_pb2

S = common_pb2.RuntimeState


def _task(task_id: str, state: int = S.RUNNING, error: str = "", created: int = 0) -> run_pb2.TaskDetail:
    task = run_pb2.TaskDetail(task_id=task_id, display_name=task_id, state=state, error=error)  # type: ignore[arg-type]
    if created:
        task.create_time.FromSeconds(created)
    return task


def _reply(version: int, tasks: list[run_pb2.TaskDetail], partial: bool, state: int = S.RUNNING) -> run_pb2.Run:
    return run_pb2.Run(
        run_id="r", state=state, status_version=version, partial_tasks=partial, task_details=tasks  # type: ignore[arg-type]
    )


def test_partial_replies_replace_in_place_and_append() -> None:
    watch = RunWatch("r")
    first = watch.request()
    assert first.run_id == "r" and first.omit_pipeline_spec and first.tasks_after_version == 0
    run = watch.update(_reply(3, [_task("a"), _task("b")], partial=False))
    assert run is not None and [t.task_id for t in run.tasks] == ["a", "b"]
    kept_a = run.tasks[0]
    assert watch.request().tasks_after_version == 3

    run2 = watch.update(_reply(5, [_task("b", S.SUCCEEDED), _task("c")], partial=True))
    assert run2 is not None
    assert [(t.task_id, t.state) for t in run2.tasks] == [("a", "RUNNING"), ("b", "SUCCEEDED"), ("c", "RUNNING")]
    assert run2.tasks[0] is kept_a  # not converted again
    # The run handed out before is left as it was.
    assert [(t.task_id, t.state) for t in run.tasks] == [("a", "RUNNING"), ("b", "RUNNING")]
    assert watch.request().tasks_after_version == 5


def test_nothing_new_yields_nothing_but_a_state_change_does() -> None:
    watch = RunWatch("r")
    assert watch.update(_reply(2, [_task("a")], partial=False)) is not None
    assert watch.update(_reply(2, [], partial=True)) is None
    # Terminating a run changes its state without a report.
    canceling = watch.update(_reply(2, [], partial=True, state=S.CANCELING))
    assert canceling is not None and canceling.state == "CANCELING"
    assert [t.task_id for t in canceling.tasks] == ["a"]


def test_a_whole_reply_replaces_every_task() -> None:
    watch = RunWatch("r")
    watch.update(_reply(1, [_task("a", S.FAILED), _task("b", S.SUCCEEDED)], partial=False))
    # Tasks were deleted since (a retry): the server lists every task.
    run = watch.update(_reply(4, [_task("b", S.SUCCEEDED), _task("a2")], partial=False))
    assert run is not None and [t.task_id for t in run.tasks] == ["b", "a2"]
    run = watch.update(_reply(5, [_task("a2", S.SUCCEEDED)], partial=True, state=S.SUCCEEDED))
    assert run is not None and run.done
    assert [(t.task_id, t.state) for t in run.tasks] == [("b", "SUCCEEDED"), ("a2", "SUCCEEDED")]


def test_a_recreated_task_is_not_merged_but_asked_for_whole() -> None:
    watch = RunWatch("r")
    watch.update(_reply(2, [_task("a", S.FAILED, created=10), _task("b", S.SUCCEEDED, created=11)], partial=False))
    # A retry recreated "a": the server may list it elsewhere now.
    assert watch.update(_reply(4, [_task("a", created=20)], partial=True)) is None
    assert watch.stale and watch.request().tasks_after_version == 0
    run = watch.update(_reply(4, [_task("b", S.SUCCEEDED, created=11), _task("a", created=20)], partial=False))
    assert not watch.stale
    assert run is not None and [t.task_id for t in run.tasks] == ["b", "a"]
    # A task changing in place keeps its creation time and is merged.
    assert watch.update(_reply(5, [_task("a", S.SUCCEEDED, created=20)], partial=True)) is not None
    assert not watch.stale


def test_a_version_that_goes_back_is_asked_for_whole() -> None:
    watch = RunWatch("r")
    watch.update(_reply(7, [_task("a")], partial=False))
    assert watch.update(_reply(2, [], partial=True)) is not None
    assert watch.request().tasks_after_version == 0


def test_a_server_without_versions_is_compared_reply_by_reply() -> None:
    watch = RunWatch("r")
    assert watch.update(_reply(0, [_task("a")], partial=False)) is not None
    assert watch.request().tasks_after_version == 0
    assert watch.update(_reply(0, [_task("a")], partial=False)) is None
    run = watch.update(_reply(0, [_task("a", error="x")], partial=False))
    assert run is not None and run.tasks[0].error == "x"
