"""Loops advanced step by step from their kept progress (only the iterations that
changed are looked at): the limit holds, a failure stops new iterations, and after a
retry the loop completes in iteration order. Real scheduler, real task processes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import select

from stepwell.v1 import common_pb2, run_pb2, scheduler_pb2
from stepwell_scheduler.models import TaskRow
from tests.integration.scheduler.many_tasks import limited_picky_spec
from tests.integration.scheduler.stack import Stack


def _iterations(status: scheduler_pb2.RunStatus) -> dict[int, run_pb2.TaskDetail]:
    found = {}
    for task in status.task_details:
        name = task.task_id
        if name.startswith("for-loop-2[") and name.endswith("]"):
            found[int(name[len("for-loop-2[") : -1])] = task
    return found


def test_a_limited_loop_stops_at_a_failure_and_completes_after_a_retry(stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "marker"  # items 1, 5 and 9 fail while it does not exist
    run_id = uuid.uuid4().hex
    stack.start(run_id, limited_picky_spec(tmp_path, items=12, parallelism=3), {"marker": str(marker)})
    status = stack.wait(run_id, timeout=120)
    assert status.state == common_pb2.FAILED
    by_id = {t.task_id: t for t in status.task_details}
    assert by_id["for-loop-2"].state == common_pb2.FAILED
    assert by_id["for-loop-2[1]/picky-item"].state == common_pb2.FAILED
    iterations = _iterations(status)
    # No iteration starts once the failure is seen: never the last ones.
    assert 1 in iterations and 11 not in iterations, sorted(iterations)
    assert sorted(iterations) == list(range(len(iterations)))  # created in index order

    marker.write_text("here")
    stack.scheduler_stub.RetryRun(scheduler_pb2.RetryTasksRequest(run_id=run_id), timeout=10)
    status = stack.wait(run_id, timeout=120)
    assert status.state == common_pb2.SUCCEEDED, status.error
    iterations = _iterations(status)
    assert sorted(iterations) == list(range(12))
    assert all(t.state == common_pb2.SUCCEEDED for t in iterations.values())
    # The retry recreated the failed task's row (counting attempts from 1 again); its new
    # attempt took a folder of its own, and the failed attempt's record is still there.
    with stack.scheduler.database.session() as s:
        row = s.scalars(
            select(TaskRow).where(TaskRow.run_id == run_id, TaskRow.qualified_name == "for-loop-2[1]/picky-item")
        ).one()
        assert row.attempt == 2 and row.task_dir.endswith("/a2"), (row.attempt, row.task_dir)
        first = json.loads((Path(row.task_dir).parent / "a1" / "result.json").read_text())
    assert first["status"] == "FAILED"
    # At most three iterations overlapped.
    spans = sorted((t.start_time.ToNanoseconds(), t.end_time.ToNanoseconds()) for t in iterations.values())
    for i, (start, _) in enumerate(spans):
        assert sum(1 for s, e in spans[:i] if e > start) <= 2
