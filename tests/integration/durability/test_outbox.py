"""A result recorded in the metadata service after the commit that ended its task (the
outbox, ``engine.outbox``): a ``kill -9`` between the two loses nothing, and nobody sees
the run final before its last result is recorded. Real ``stepwell-scheduler`` processes,
a real kill, the real metadata service."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from stepwell.server import Database, make_channel
from stepwell.v1 import common_pb2, metadata_pb2, metadata_pb2_grpc
from stepwell_scheduler.models import RunRow, TaskRow
from stepwell_scheduler.status import StatusCache
from tests.integration.durability.conftest import Peers
from tests.integration.durability.harness import Scheduler
from tests.integration.scheduler.pipelines import parameter_chain


def _executions(md_address: str, run_id: str) -> dict[str, list[metadata_pb2.Execution]]:
    with make_channel(md_address) as channel:
        stub = metadata_pb2_grpc.MetadataStub(channel)
        ctx = stub.GetContext(metadata_pb2.GetContextRequest(type="system.PipelineRun", name=run_id), timeout=10)
        found = stub.GetExecutions(metadata_pb2.GetExecutionsRequest(context_id=ctx.id), timeout=10).executions
    by_task: dict[str, list[metadata_pb2.Execution]] = {}
    for execution in found:
        by_task.setdefault(execution.name, []).append(execution)
    return by_task


def test_a_kill_before_the_record_loses_no_result(sqlite_peers: Peers, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    names = ["a", "b", "c"]
    # The third commit that ends a task ends "c" and the run; the scheduler dies right
    # after it, before recording "c" in the metadata service.
    first = Scheduler(sqlite_peers.env(db_url, STEPWELL_SCHEDULER_FAILPOINTS="task-finished@3"))
    try:
        first.start_run("run-o", parameter_chain(names), salt="x")
        first.wait_killed()
    finally:
        first.close()

    # What the crash left: the run ended in the database, its last result unrecorded.
    db = Database(db_url)
    try:
        with db.session() as s:
            run_state = s.scalar(select(RunRow.state).where(RunRow.run_id == "run-o"))
            waiting = list(s.scalars(select(TaskRow.qualified_name).where(TaskRow.unrecorded.is_(True))))
            reported = StatusCache().snapshot(s, "run-o")
    finally:
        db.dispose()
    assert run_state == "SUCCEEDED"
    assert waiting == ["c"]
    assert reported is not None and reported.state == "RUNNING" and not reported.final
    before = _executions(sqlite_peers.md_address, "run-o")
    assert [e.state for e in before["c"]] == [metadata_pb2.Execution.RUNNING]
    assert [e.state for e in before["b"]] == [metadata_pb2.Execution.COMPLETE]

    # A new scheduler records what the dead one left, and only then reports the run final.
    second = Scheduler(sqlite_peers.env(db_url))
    try:
        status = second.wait(["run-o"], timeout=30)["run-o"]
        # The API service hears of the end too (the sweep reports the run it cleared).
        deadline = time.monotonic() + 15
        while not any(r.state == common_pb2.SUCCEEDED for r in sqlite_peers.api.for_run("run-o")):
            assert time.monotonic() < deadline, ("the end was never reported", second.log())
            time.sleep(0.05)
    finally:
        second.close()
    assert status.state == common_pb2.SUCCEEDED, (status.error, second.log())
    after = _executions(sqlite_peers.md_address, "run-o")
    for name, expected in (("a", "x!"), ("b", "x!!"), ("c", "x!!!")):
        (execution,) = after[name]
        assert execution.state == metadata_pb2.Execution.COMPLETE, (name, execution)
        assert execution.outputs["out"] == expected, (name, execution.outputs)
    (c,) = [t for t in status.task_details if t.task_id == "c"]
    assert c.execution_id == after["c"][0].id
    db = Database(db_url)
    try:
        with db.session() as s:
            assert not list(s.scalars(select(TaskRow.id).where(TaskRow.unrecorded.is_(True))))
    finally:
        db.dispose()
