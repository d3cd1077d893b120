"""The engine ends harvested rows, advances DAGs and claims queued tasks in one
transaction per step. When that transaction fails for one run (here: its DAG cannot be
advanced), the other runs' results are still recorded and they go on; the broken run's
finished tasks are ended too and it completes once it can be advanced again. Real
scheduler, real task processes, both back ends."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from stepwell.v1 import common_pb2, scheduler_pb2
from stepwell_scheduler.engine.processes import task_key
from stepwell_scheduler.models import SUCCEEDED, TaskRow
from tests.integration.scheduler.pipelines import parallel_pipeline, three_task_pipeline
from tests.integration.scheduler.stack import Stack


def _states(stack: Stack, run_id: str) -> dict[str, str]:
    with stack.scheduler.database.session() as s:
        return {r.qualified_name: r.state for r in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))}


def test_one_runs_failing_advance_holds_back_no_other_run(stack: Stack) -> None:
    engine = stack.scheduler.engine
    broken = uuid.uuid4().hex
    healthy = uuid.uuid4().hex
    failing = threading.Event()
    failing.set()
    real = engine._advance_in
    calls = {"failed": 0}

    def advance_in(s: Any, run_id: str) -> str | None:
        # The broken run fails to advance once its tasks were created.
        if run_id == broken and failing.is_set() and calls.get("created"):
            calls["failed"] += 1
            raise RuntimeError("injected: this run's DAG cannot be advanced")
        final = real(s, run_id)
        if run_id == broken and final is None:
            calls["created"] = 1
        return final

    engine._advance_in = advance_in  # type: ignore[method-assign]
    try:
        stack.start(broken, parallel_pipeline(seconds=0.3, width=2))
        stack.start(healthy, three_task_pipeline(), {"n": 3})
        status = stack.wait(healthy, timeout=60)
        assert status.state == common_pb2.SUCCEEDED, status.error
        # The broken run's tasks ended (their rows were written outside the failed
        # transaction) although its DAG could not be advanced.
        deadline = time.monotonic() + 20
        while set(_states(stack, broken).values()) != {SUCCEEDED}:
            assert time.monotonic() < deadline, _states(stack, broken)
            time.sleep(0.05)
        assert calls["failed"] > 0
        running = stack.scheduler_stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=broken), timeout=10)
        assert running.state == common_pb2.RUNNING
    finally:
        failing.clear()
        engine._advance_in = real  # type: ignore[method-assign]
    engine.wake(broken)
    assert stack.wait(broken, timeout=30).state == common_pb2.SUCCEEDED


@contextlib.contextmanager
def _failing(engine: Any, method: str, times: int, message: str) -> Iterator[dict[str, int]]:
    """Makes the engine's ``method`` raise on its first ``times`` calls that have work
    (a non-empty first list argument, or any call when it takes none)."""
    real = getattr(engine, method)
    left = {"left": times}

    def failing(*args: Any) -> Any:
        work = next((a for a in args if isinstance(a, list)), None)
        if left["left"] and (work is None or work):
            left["left"] -= 1
            raise RuntimeError(f"injected: {message}")
        return real(*args)

    setattr(engine, method, failing)
    try:
        yield left
    finally:
        setattr(engine, method, real)


def _run_to_success(stack: Stack, timeout: float) -> str:
    run_id = uuid.uuid4().hex
    stack.start(run_id, three_task_pipeline(), {"n": 3})
    status = stack.wait(run_id, timeout=timeout)
    assert status.state == common_pb2.SUCCEEDED, status.error
    assert set(_states(stack, run_id).values()) == {SUCCEEDED}
    return run_id


def test_results_are_harvested_again_when_their_rows_cannot_be_ended(stack: Stack) -> None:
    # Twice: the step's transaction and its one-by-one fallback.
    with _failing(stack.scheduler.engine, "_end_rows", 2, "the database refused the write") as left:
        _run_to_success(stack, timeout=60)
    assert left["left"] == 0


def test_ended_attempts_are_read_again_when_a_harvest_fails(stack: Stack) -> None:
    with _failing(stack.scheduler.engine, "_outcome", 1, "the harvest failed") as left:
        _run_to_success(stack, timeout=60)
    assert left["left"] == 0


class _Gate:
    """Holds the engine thread before its next step (wraps ``_check_timers``)."""

    def __init__(self, engine: Any) -> None:
        self.real = engine._check_timers
        self.closed, self.entered, self.opened = threading.Event(), threading.Event(), threading.Event()
        engine._check_timers = self

    def __call__(self) -> None:
        if self.closed.is_set():
            self.entered.set()
            self.opened.wait(30)
        self.real()

    def close(self) -> None:
        self.opened.clear()
        self.entered.clear()
        self.closed.set()
        assert self.entered.wait(30)

    def release(self) -> None:
        self.closed.clear()
        self.opened.set()


def test_a_starting_run_that_fails_to_advance_strands_no_claim(stack: Stack) -> None:
    """Claims committed by a step start even when a run that starts in the same step
    fails to advance after the commit, and every run still completes."""
    engine = stack.scheduler.engine
    gate = _Gate(engine)
    chain, broken, late = "b" + uuid.uuid4().hex[:10], "c" + uuid.uuid4().hex[:10], "d" + uuid.uuid4().hex[:10]
    real_advance = engine._advance
    fired = {"n": 0}

    def advance(run_id: str) -> None:
        if run_id == broken and not fired["n"]:
            fired["n"] += 1
            raise RuntimeError("injected: a transient error advancing a starting run")
        real_advance(run_id)

    try:
        stack.start(chain, three_task_pipeline(), {"n": 3})
        deadline = time.monotonic() + 30
        while "running" not in {s.lower() for s in _states(stack, chain).values()}:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # The chain's first task ends while the engine is held; the next step then claims
        # its successor in the same transaction that sees two new runs start.
        gate.close()
        deadline = time.monotonic() + 30
        while not engine._exited:
            assert time.monotonic() < deadline, "the first task did not end"
            time.sleep(0.02)
        engine._advance = advance  # type: ignore[method-assign]
        stack.start(broken, three_task_pipeline(), {"n": 3})
        stack.start(late, three_task_pipeline(), {"n": 3})
        gate.release()
        for run_id in (chain, broken, late):
            status = stack.wait(run_id, timeout=60)
            assert status.state == common_pb2.SUCCEEDED, (run_id, status.error)
    finally:
        gate.release()
        engine._check_timers = gate.real  # type: ignore[method-assign]
        engine._advance = real_advance  # type: ignore[method-assign]
    assert fired["n"] == 1


def test_claimed_tasks_whose_start_failed_are_taken_over_again(stack: Stack) -> None:
    # Found again by the sweep on the lease heartbeat (a third of a lease).
    with _failing(stack.scheduler.engine, "_launch", 1, "the start failed after the claim committed") as left:
        _run_to_success(stack, timeout=90)
    assert left["left"] == 0


def test_an_exit_notice_of_another_process_does_not_end_a_running_attempt(stack: Stack) -> None:
    """An exit notice for a task whose current process still runs (an earlier process of
    it, let go when another scheduler took the run) leaves the running attempt alone."""
    engine = stack.scheduler.engine
    run_id = uuid.uuid4().hex
    stack.start(run_id, parallel_pipeline(seconds=2.0, width=1))
    key = task_key(run_id, "sleep-0")
    deadline = time.monotonic() + 30
    while key not in engine._handles:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    engine._exited_callback(key)  # as if an earlier process of the task had just ended
    time.sleep(0.5)
    assert _states(stack, run_id)["sleep-0"] == "RUNNING"
    status = stack.wait(run_id, timeout=30)
    assert status.state == common_pb2.SUCCEEDED, status.error
