"""Tasks a step creates are claimed as they are inserted (``LaunchMixin._claim``): the
step's one transaction ends the upstream row and inserts its successors RUNNING, with
no claim query and no UPDATE after the INSERT, and each starts exactly once even when
something flushes the new rows before the claim looks at the queue. Real scheduler and
task processes, both back ends."""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from stepwell.v1 import common_pb2, scheduler_pb2
from stepwell_scheduler.models import RUNNING, TaskRow
from tests.integration.scheduler.pipelines import (
    failing_pipeline,
    parallel_pipeline,
    three_task_pipeline,
)
from tests.integration.scheduler.stack import Stack


@pytest.fixture
def inserted(stack: Stack) -> Iterator[list[tuple[str, str]]]:
    """``(qualified name, state)`` of every task row inserted while the test runs, by the
    ORM's flush or by the engine's direct writes (``engine.direct``)."""
    rows: list[tuple[str, str]] = []
    direct = stack.scheduler.engine.direct
    # Every row the direct writes insert (one by one, or several in one statement on
    # Postgres) passes through _inserted once stored.
    real_inserted = direct._inserted

    def before_insert(_mapper: Any, _connection: Any, target: TaskRow) -> None:
        rows.append((target.qualified_name, target.state))

    def inserted_row(row: TaskRow, *args: Any) -> None:
        rows.append((row.qualified_name, row.state))
        real_inserted(row, *args)

    event.listen(TaskRow, "before_insert", before_insert)
    direct._inserted = inserted_row  # type: ignore[method-assign]
    try:
        yield rows
    finally:
        event.remove(TaskRow, "before_insert", before_insert)
        direct._inserted = real_inserted  # type: ignore[method-assign]


def _attempts(stack: Stack, run_id: str) -> dict[str, int]:
    with stack.scheduler.database.session() as s:
        rows = s.scalars(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.kind == "container"))
        return {r.qualified_name: r.attempt for r in rows}


def _three_tasks(stack: Stack) -> tuple[str, Any]:
    """Runs the three-task pipeline to its end: ``(run id, final status)``."""
    run_id = uuid.uuid4().hex
    stack.start(run_id, three_task_pipeline(), {"n": 3})
    return run_id, stack.wait(run_id, timeout=60)


def _states(stack: Stack, run_id: str) -> dict[str, tuple[str, int]]:
    with stack.scheduler.database.session() as s:
        rows = s.scalars(select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.kind == "container"))
        return {r.qualified_name: (r.state, r.attempt) for r in rows}


def test_a_successor_is_inserted_claimed(stack: Stack, inserted: list[tuple[str, str]]) -> None:
    run_id, status = _three_tasks(stack)
    assert status.state == common_pb2.SUCCEEDED, status.error
    states = dict(inserted)
    # The first task is created when the run starts (a transaction of its own, then a
    # claim); "consume" in the transaction that ends "produce", claimed in its INSERT.
    assert states["consume"] == RUNNING, inserted
    assert _attempts(stack, run_id)["consume"] == 1


def test_new_rows_flushed_before_the_claim_start_once(stack: Stack) -> None:
    engine = stack.scheduler.engine
    real_claim, real_submit = engine._claim, engine.executor.submit_many
    submitted: collections.Counter[str] = collections.Counter()

    def claim(s: Any, already: int = 0) -> Any:
        s.flush()  # as a lazy load would: the new rows are in the database, PENDING
        engine._queue_changed()  # and the claim queries the queue (as after a takeover)
        return real_claim(s, already)

    def submit_many(requests: Any) -> Any:
        submitted.update(request.key for request in requests)
        return real_submit(requests)

    engine._claim = claim  # type: ignore[method-assign]
    engine.executor.submit_many = submit_many  # type: ignore[method-assign]
    try:
        run_id, status = _three_tasks(stack)
    finally:
        engine._claim = real_claim  # type: ignore[method-assign]
        engine.executor.submit_many = real_submit  # type: ignore[method-assign]
    assert status.state == common_pb2.SUCCEEDED, status.error
    mine = {key: n for key, n in submitted.items() if key.startswith(run_id)}
    assert len(mine) >= 3 and set(mine.values()) == {1}, mine
    assert set(_attempts(stack, run_id).values()) == {1}


@pytest.fixture
def no_heartbeat_sweep(stack: Stack) -> Iterator[None]:
    """Turns off the engine's lease tick, whose safety net makes the next claim query the
    queue: a task queued unnoticed would then wait forever, not one heartbeat."""
    engine = stack.scheduler.engine
    real = engine._lease_tick
    engine._lease_tick = lambda: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        engine._lease_tick = real  # type: ignore[method-assign]


def test_tasks_queued_beyond_the_free_slots_are_claimed_later(stack: Stack, no_heartbeat_sweep: None) -> None:
    # Six tasks on four slots: the claim that takes four leaves two queued, and the
    # claims after it must look for them although no step queues anything new.
    run_id = uuid.uuid4().hex
    stack.start(run_id, parallel_pipeline(seconds=0.3, width=6))
    status = stack.wait(run_id, timeout=60)
    assert status.state == common_pb2.SUCCEEDED, status.error
    assert set(_attempts(stack, run_id).values()) == {1}


def test_a_retried_run_runs_its_failed_task_again_without_the_heartbeat(stack: Stack, no_heartbeat_sweep: None) -> None:
    # RetryRun (another thread) forgets the failed task; the next advance creates it
    # again and it is inserted claimed.
    run_id = uuid.uuid4().hex
    stack.start(run_id, failing_pipeline())
    assert stack.wait(run_id, timeout=60).state == common_pb2.FAILED
    stack.scheduler_stub.RetryRun(scheduler_pb2.RetryTasksRequest(run_id=run_id), timeout=10)
    # Its second attempt (the first one's folder holds a result) ends, and the run again.
    deadline = time.monotonic() + 60
    while _states(stack, run_id).get("boom") != ("FAILED", 2):
        assert time.monotonic() < deadline, _states(stack, run_id)
        time.sleep(0.05)
    assert stack.wait(run_id, timeout=60).state == common_pb2.FAILED
    assert "after" not in _states(stack, run_id)


def test_a_claim_rolled_back_leaves_its_tasks_to_the_next_query(stack: Stack, no_heartbeat_sweep: None) -> None:
    # The claim's transaction fails after its query saw the whole queue: the tasks it
    # found are queued again, and the next claim must query for them.
    engine = stack.scheduler.engine
    real_claim = engine._claim
    failed = {"n": 0}

    def claim(s: Any, already: int = 0) -> Any:
        claimed = real_claim(s, already)
        if claimed and not failed["n"]:
            failed["n"] += 1
            raise RuntimeError("injected: the claim's transaction fails after its query")
        return claimed

    engine._claim = claim  # type: ignore[method-assign]
    try:
        _run_id, status = _three_tasks(stack)
    finally:
        engine._claim = real_claim  # type: ignore[method-assign]
    assert failed["n"] == 1
    assert status.state == common_pb2.SUCCEEDED, status.error
