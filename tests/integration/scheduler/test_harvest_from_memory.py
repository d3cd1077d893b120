"""A harvest ends the rows of attempts this engine started from what it kept in memory
at their start: the run is locked and read, the task rows are not read back. What the
start stored with statements of its own (pid, deadline, execution id) is part of what it
kept, so the ended rows are exactly what a harvest that read them would have written.
Real scheduler, real task processes, both back ends."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from sqlalchemy import select

from stepwell.v1 import common_pb2, scheduler_pb2
from stepwell_scheduler.engine.plan import CONTAINER
from stepwell_scheduler.models import SUCCEEDED, TaskRow
from tests.integration.scheduler.pipelines import three_task_pipeline
from tests.integration.scheduler.stack import Stack


def _rows(stack: Stack, run_id: str) -> dict[str, TaskRow]:
    with stack.scheduler.database.session() as s:
        return {r.qualified_name: r for r in s.scalars(select(TaskRow).where(TaskRow.run_id == run_id))}


@contextlib.contextmanager
def _reads_back(stack: Stack, run_id: str) -> Iterator[list[str]]:
    """The task rows of ``run_id`` the engine reads back to end them, while in the block."""
    engine = stack.scheduler.engine
    real = engine._lock_and_read
    reads: list[str] = []

    def lock_and_read(s: Any, run: str, names: list[str]) -> Any:
        if run == run_id:
            reads.extend(names)
        return real(s, run, names)

    engine._lock_and_read = lock_and_read  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        engine._lock_and_read = real  # type: ignore[method-assign]


def test_ended_rows_are_whole_without_being_read_back(stack: Stack) -> None:
    run = uuid.uuid4().hex
    request = scheduler_pb2.StartRunRequest(run_id=run)
    json_format.ParseDict(three_task_pipeline(), request.pipeline_spec)
    json_format.ParseDict({"n": 3}, request.parameters)
    # Every attempt gets a deadline, stored by a statement of the start's own.
    request.options.task_timeout_seconds = 600
    with _reads_back(stack, run) as reads:
        stack.scheduler_stub.StartRun(request, timeout=30)
        status = stack.wait(run, timeout=60)
    assert status.state == common_pb2.SUCCEEDED, status.error
    assert reads == []  # no harvest read a task row back
    rows = _rows(stack, run)
    containers = [row for row in rows.values() if row.kind == CONTAINER]
    assert len(containers) == 3
    for row in containers:
        assert row.state == SUCCEEDED, (row.qualified_name, row.error)
        assert row.deadline_at is None, row.qualified_name  # cleared, though memory had not seen it set
        assert row.finished_at is not None and row.started_at is not None
        assert row.pid > 0 and row.attempt == 1 and row.task_dir
        assert row.execution_id > 0 and not row.lookup_execution
        assert row.outputs.get("parameters"), row.qualified_name
        assert row.error == ""


def test_tasks_that_looked_for_a_cache_entry_are_ended_from_memory_too(stack: Stack) -> None:
    """With caching on, a task is claimed without its attempt, looked up in the cache (a
    miss sets its fingerprint) and given its attempt in a transaction of its own: its
    kept row is as clean as any other once that is stored."""
    run = uuid.uuid4().hex
    spec = three_task_pipeline()
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec.get("components", {}).values() if "dag" in c)]
    for dag in dags:
        for task in dag["tasks"].values():
            task["cachingOptions"] = {"enableCache": True}
    n = 10 + uuid.uuid4().int % 100_000  # fresh inputs, fresh fingerprints: no entry from an earlier run
    with _reads_back(stack, run) as reads:
        stack.start(run, spec, {"n": n})
        status = stack.wait(run, timeout=60)
    assert status.state == common_pb2.SUCCEEDED, status.error
    rows = [row for row in _rows(stack, run).values() if row.kind == CONTAINER]
    assert len(rows) == 3
    assert all(row.fingerprint and not row.cached for row in rows), [(r.fingerprint, r.cached) for r in rows]
    assert reads == []
    for row in rows:
        assert row.state == SUCCEEDED and row.execution_id > 0 and row.pid > 0
        assert row.outputs.get("parameters"), row.qualified_name


def test_after_a_lease_lapse_the_rows_are_read_back(stack: Stack) -> None:
    """An attempt claimed before a lapse of the leases (the process stalled; another
    scheduler may have taken the run) is never ended from memory."""
    engine = stack.scheduler.engine
    real_collect = engine._collect
    run = uuid.uuid4().hex

    def collect(keys: list[str]) -> Any:
        engine.leases.epoch += 1  # as a renewal after the leases' validity ran out does
        return real_collect(keys)

    engine._collect = collect  # type: ignore[method-assign]
    try:
        with _reads_back(stack, run) as reads:
            stack.start(run, three_task_pipeline(), {"n": 3})
            status = stack.wait(run, timeout=60)
    finally:
        engine._collect = real_collect  # type: ignore[method-assign]
    assert status.state == common_pb2.SUCCEEDED, status.error
    containers = {name for name, row in _rows(stack, run).items() if row.kind == CONTAINER}
    assert set(reads) >= containers, reads
    assert all(row.state == SUCCEEDED for row in _rows(stack, run).values())
