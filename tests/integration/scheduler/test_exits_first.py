"""The metadata records that follow a start are made on the recorder's thread
(``engine.recorder``), and what they give is stored by the engine once no exit waits: a
start's execution id, or just before its own harvest (which waits for the call when
the attempt ended first); a result's outbox flag is cleared once no exit waits, and the
run reported then. Nothing is lost either way: every task ends with exactly one
execution, COMPLETE with its output, its id stored, and no flag left. Real scheduler,
metadata service and task processes, both back ends."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from stepwell.v1 import common_pb2, metadata_pb2
from stepwell_scheduler.models import TaskRow
from tests.integration.scheduler.pipelines import parameter_chain
from tests.integration.scheduler.stack import Stack

NAMES = ["a", "b", "c", "d"]


def _until(_engine: Any, done: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)


def _exit_queued(engine: Any) -> bool:
    with engine._lock:
        return bool(engine._exited)


def _run_chain(stack: Stack) -> str:
    run_id = uuid.uuid4().hex
    stack.start(run_id, parameter_chain(NAMES, pipeline="exits-first"), {"salt": "s"})
    status = stack.wait(run_id, timeout=60)
    assert status.state == common_pb2.SUCCEEDED, status.error
    # The API service hears of the end too: a report follows the last flag's clearing.
    _until(stack, lambda: any(r.state == common_pb2.SUCCEEDED for r in stack.api.for_run(run_id)), seconds=10)
    assert any(r.state == common_pb2.SUCCEEDED for r in stack.api.for_run(run_id)), "the end was never reported"
    return run_id


def _assert_all_recorded(stack: Stack, run_id: str) -> None:
    with stack.scheduler.database.session() as s:
        rows = {r.qualified_name: r for r in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))}
    assert set(rows) == set(NAMES)
    for name, row in rows.items():
        assert row.execution_id and not row.lookup_execution and not row.unrecorded, (name, row.execution_id)
    ctx = stack.metadata_stub.GetContext(metadata_pb2.GetContextRequest(type="system.PipelineRun", name=run_id))
    executions = stack.metadata_stub.GetExecutions(metadata_pb2.GetExecutionsRequest(context_id=ctx.id)).executions
    assert sorted(e.name for e in executions) == NAMES  # one each
    expected = "s"
    for name in NAMES:
        (execution,) = [e for e in executions if e.name == name]
        expected += "!"
        assert execution.id == rows[name].execution_id
        assert execution.state == metadata_pb2.Execution.COMPLETE
        assert dict(execution.outputs)["out"] == expected


def _submits_wait_for_exits(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each submit returns only once an exit is queued (its processes' own, in a chain):
    every start's bookkeeping then finds an exit waiting."""
    real_submit = engine.executor.submit_many

    def submit_many(requests: Any) -> Any:
        handles = real_submit(requests)
        _until(engine, lambda: _exit_queued(engine))
        return handles

    monkeypatch.setattr(engine.executor, "submit_many", submit_many)


def test_a_start_recorded_after_the_next_exit(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each creation of executions returns only once an exit is queued (in a chain, its
    # own task's): the harvest then finds its call still in flight and waits for it.
    engine = stack.scheduler.engine
    exits: list[str] = []
    real_on_exit = engine.executor.on_exit

    def on_exit(key: str) -> None:
        exits.append(key)
        real_on_exit(key)

    real_start = engine.metadata.start_executions

    def start_executions(starts: Any) -> Any:
        before = len(exits)
        ids = real_start(starts)
        _until(engine, lambda: len(exits) > before, seconds=5)
        return ids

    real_take = engine._take_records
    waited: list[bool] = []

    def take_records(keys: set[str] | None = None) -> None:
        if keys and any(batch.keys & keys for batch in engine._in_flight):
            waited.append(all(batch.future.done() for batch in engine._in_flight))
        real_take(keys)

    monkeypatch.setattr(engine.executor, "on_exit", on_exit)
    monkeypatch.setattr(engine.metadata, "start_executions", start_executions)
    monkeypatch.setattr(engine, "_take_records", take_records)
    run_id = _run_chain(stack)
    assert len(waited) >= len(NAMES) - 1, waited
    _assert_all_recorded(stack, run_id)


def test_a_flag_cleared_after_the_next_exit(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Recording a result returns only once the engine has started another task (the
    # chain's next-but-one, after the next one's exit and harvest): the engine does not
    # wait for the recorder. The flag is cleared after, and the run's end is reported
    # once the last flag is cleared. The heartbeat's sweep, which would clear a flag
    # left behind (and let the run end), is off: the engine must clear them all.
    engine = stack.scheduler.engine
    real_submit = engine.executor.submit_many
    submits: list[int] = []

    def submit_many(requests: Any) -> Any:
        submits.append(len(requests))
        return real_submit(requests)

    real_finish = engine.metadata.finish_executions
    waited: list[int] = []

    def finish_executions(ends: Any) -> Any:
        result = real_finish(ends)
        before = len(submits)
        _until(engine, lambda: len(submits) > before, seconds=2)
        if len(submits) > before:
            waited.append(len(ends))
        return result

    monkeypatch.setattr(engine.executor, "submit_many", submit_many)
    monkeypatch.setattr(engine.metadata, "finish_executions", finish_executions)
    monkeypatch.setattr(engine, "_record_left", lambda: 0)
    run_id = _run_chain(stack)
    assert waited, "no task started while a result was recorded"
    _assert_all_recorded(stack, run_id)


def test_a_failure_to_store_execution_ids_loses_no_exit(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The statement that stores execution ids fails (a database gone for a moment), on
    # the path just before a harvest: the exit is harvested all the same, each attempt's
    # execution found by run, task and attempt, and the run ends.
    engine = stack.scheduler.engine
    _submits_wait_for_exits(engine, monkeypatch)
    real_update = engine._update_claimed
    failed: list[int] = []

    def update_claimed(connection: Any, values: list[dict[str, Any]]) -> None:
        if values and "execution_id" in values[0] and len(failed) < 2:
            failed.append(len(values))
            raise OSError("the database went away")
        real_update(connection, values)

    monkeypatch.setattr(engine, "_update_claimed", update_claimed)
    run_id = _run_chain(stack)
    assert len(failed) == 2
    _assert_all_recorded(stack, run_id)


def test_the_sweep_leaves_alone_the_records_under_way(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first record of results is held on the recorder's thread while the heartbeat
    # runs its sweep of rows left unrecorded: the rows of that record are the engine's
    # own, under way, and are not recorded a second time.
    engine = stack.scheduler.engine
    entered, release, swept = threading.Event(), threading.Event(), threading.Event()
    finished: list[int] = []
    real_finish = engine.metadata.finish_executions

    def finish_executions(ends: Any) -> Any:
        if not entered.is_set() and threading.current_thread().name.startswith("metadata-recorder"):
            entered.set()
            release.wait(10)
        finished.extend(end.execution_id for end in ends)
        return real_finish(ends)

    real_left = engine._record_left

    def record_left() -> int:
        count = real_left()
        if entered.is_set():
            swept.set()
        return count

    monkeypatch.setattr(engine.metadata, "finish_executions", finish_executions)
    monkeypatch.setattr(engine, "_record_left", record_left)
    run_id = uuid.uuid4().hex
    stack.start(run_id, parameter_chain(NAMES, pipeline="exits-first"), {"salt": "s"})
    assert entered.wait(30), "no result was recorded after its start"
    engine._tick()  # the heartbeat
    assert swept.wait(10), "the sweep did not run"
    release.set()
    assert stack.wait(run_id, timeout=60).state == common_pb2.SUCCEEDED
    _until(stack, lambda: any(r.state == common_pb2.SUCCEEDED for r in stack.api.for_run(run_id)), seconds=10)
    _assert_all_recorded(stack, run_id)
    assert sorted(finished) == sorted(set(finished)), "an execution was ended twice"
    assert len(finished) == len(NAMES)
