"""Partial status reports from a real scheduler to an API peer that records them.

The peer's view of a run is rebuilt by applying the reports as the API service does:
a full report replaces the task list, a partial one replaces or adds the tasks it lists.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc

from stepwell.server import ServiceBinding, start_server
from stepwell.v1 import common_pb2, run_pb2, run_pb2_grpc, scheduler_pb2
from stepwell_scheduler.api_client import ApiClient, StatusReporter
from stepwell_scheduler.status import RunSnapshot, TaskEntry
from tests.integration.scheduler.many_tasks import PICKY_FAILURES, loop_spec, picky_spec
from tests.integration.scheduler.stack import RecordingRunService, Stack

ITEMS = 24
FINAL = {common_pb2.SUCCEEDED, common_pb2.FAILED, common_pb2.CANCELED, common_pb2.SKIPPED}


def _replay(reports: list[run_pb2.ReportRunStatusRequest]) -> dict[str, run_pb2.TaskDetail]:
    """What the API service holds after ``reports``; asserts that every partial report
    lists only tasks that are new or differ from what it already had."""
    held: dict[str, run_pb2.TaskDetail] = {}
    for report in reports:
        if report.partial:
            for task in report.task_details:
                assert held.get(task.task_id) != task, f"{task.task_id} was sent again unchanged"
        else:
            held = {}
        for task in report.task_details:
            held[task.task_id] = task
    return held


def _delivered(stack: Stack, run_id: str, state: int, after: int = 0) -> list[run_pb2.ReportRunStatusRequest]:
    """The run's reports once one with ``state`` (after the first ``after``) arrived and
    nothing is left to send."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reports = stack.api.for_run(run_id)
        if any(r.state == state for r in reports[after:]) and run_id not in stack.scheduler.reporter.pending():
            return reports
        time.sleep(0.05)
    raise AssertionError(f"no report of {common_pb2.RuntimeState.Name(state)} for run {run_id}")


def _scheduler_tasks(stack: Stack, run_id: str) -> dict[str, run_pb2.TaskDetail]:
    status = stack.scheduler_stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id), timeout=10)
    return {t.task_id: t for t in status.task_details}


def test_reports_after_the_first_carry_only_changed_tasks(stack: Stack, tmp_path: Path) -> None:
    before = stack.scheduler.reporter.stats.tasks
    run_id = uuid.uuid4().hex
    stack.start(run_id, loop_spec(ITEMS, tmp_path))
    assert stack.wait(run_id, timeout=120).state == common_pb2.SUCCEEDED
    reports = _delivered(stack, run_id, common_pb2.SUCCEEDED)

    tasks = _scheduler_tasks(stack, run_id)
    assert len(tasks) > 2 * ITEMS  # the loop, its iterations and their tasks
    assert _replay(reports) == tasks
    end = next(i for i, r in enumerate(reports) if r.state in FINAL)
    first, *middle, last = reports[: end + 1]
    assert not first.partial  # nothing acknowledged yet
    assert middle and all(r.partial for r in middle)
    # The run's end is reported in full: the API's final record is the scheduler's.
    assert not last.partial and last.state == common_pb2.SUCCEEDED
    assert {t.task_id for t in last.task_details} == set(tasks)
    assert all(not r.partial and r.state == common_pb2.SUCCEEDED for r in reports[end:])
    # Reports stamped in order, as the API service requires.
    stamps = [r.update_time.ToMicroseconds() for r in reports]
    assert stamps == sorted(set(stamps))

    assert stack.scheduler.reporter.stats.partial >= len(middle)
    assert stack.scheduler.reporter.stats.tasks - before >= sum(len(r.task_details) for r in reports)
    # GetRunStatus still returns the whole run.
    assert len(stack.scheduler.service.status(run_id).task_details) == len(tasks)

    # Marked again once ended (a late bookkeeping write does this), the run is not
    # reported again: the API service has acknowledged that very final report.
    reporter = stack.scheduler.reporter
    sent, repeats = len(stack.api.for_run(run_id)), reporter.stats.repeats
    reporter.mark(run_id)
    deadline = time.monotonic() + 20
    while reporter.stats.repeats == repeats and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reporter.stats.repeats == repeats + 1
    assert len(stack.api.for_run(run_id)) == sent


def test_after_a_retry_from_failure_the_peer_has_exactly_the_schedulers_tasks(stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = uuid.uuid4().hex
    stack.start(run_id, picky_spec(tmp_path), {"marker": str(marker)})
    assert stack.wait(run_id, timeout=120).state == common_pb2.FAILED
    failed = _delivered(stack, run_id, common_pb2.FAILED)
    before_retry = _scheduler_tasks(stack, run_id)
    assert _replay(failed) == before_retry
    failed_ids = {t for t, d in before_retry.items() if d.state == common_pb2.FAILED}
    assert failed_ids >= PICKY_FAILURES

    marker.write_text("here")
    stack.scheduler_stub.RetryRun(scheduler_pb2.RetryTasksRequest(run_id=run_id), timeout=10)
    assert stack.wait(run_id, timeout=120).state == common_pb2.SUCCEEDED
    reports = _delivered(stack, run_id, common_pb2.SUCCEEDED, after=len(failed))

    after_retry = _scheduler_tasks(stack, run_id)
    assert _replay(reports) == after_retry
    assert all(d.state in (common_pb2.SUCCEEDED, common_pb2.SKIPPED) for d in after_retry.values())
    # The first report after the retry lists every task (the run had ended, and the
    # retry deleted the failed tasks' rows, which a partial report cannot remove); the
    # next ones only changes, until the full one of the run's end.
    retried = reports[len(failed) :]
    end = next(i for i, r in enumerate(retried) if r.state in FINAL)
    assert not retried[0].partial
    assert all(r.partial for r in retried[1:end]) and not retried[end].partial


class RefusingRunService(RecordingRunService):
    """Records reports, or refuses them (UNAVAILABLE) while ``refuse`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = False
        self.refused = 0

    def ReportRunStatus(self, request: Any, context: grpc.ServicerContext) -> run_pb2.ReportRunStatusResponse:
        if self.refuse:
            self.refused += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "not now")
        return super().ReportRunStatus(request, context)


def _entry(task_id: str, row_id: int, state: str = "RUNNING") -> TaskEntry:
    detail = run_pb2.TaskDetail(task_id=task_id, state=state)  # type: ignore[arg-type]
    return TaskEntry(task_id, (row_id, task_id, state), (datetime(2026, 1, 1, tzinfo=timezone.utc), row_id), False, detail)


def test_a_refused_report_leaves_the_baseline_and_a_new_api_address_gets_everything() -> None:
    """The reporter against real gRPC servers; the run's snapshots are given."""
    first_api, second_api = RefusingRunService(), RefusingRunService()
    servers = [
        start_server([ServiceBinding(run_pb2_grpc.add_RunServiceServicer_to_server, api, "stepwell.v1.RunService")], port=0)
        for api in (first_api, second_api)
    ]
    address = servers[0].address
    snapshots: dict[str, RunSnapshot] = {}
    client = ApiClient(lambda: address)
    reporter = StatusReporter(client, snapshots.get, retry_seconds=0.05)
    reporter.start()

    def put(*entries: TaskEntry) -> None:
        snapshots["r"] = RunSnapshot("r", "RUNNING", "", {}, {e.task_id: e for e in entries})
        reporter.mark("r")

    def heard(api: RefusingRunService, before: int) -> run_pb2.ReportRunStatusRequest:
        deadline = time.monotonic() + 10
        while len(api.reports) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        return api.reports[-1]

    try:
        a, b = _entry("a", 1), _entry("b", 2)
        put(a, b)
        sent = heard(first_api, 0)
        assert not sent.partial and len(sent.task_details) == 2
        b = _entry("b", 2, "SUCCEEDED")
        put(a, b)
        sent = heard(first_api, 1)
        assert sent.partial and [t.task_id for t in sent.task_details] == ["b"]

        first_api.refuse = True  # these changes are not heard...
        put(a, b, _entry("c", 3))
        deadline = time.monotonic() + 10
        while not first_api.refused and time.monotonic() < deadline:
            time.sleep(0.01)
        put(a, b, _entry("c", 3, "SUCCEEDED"), _entry("d", 4))
        first_api.refuse = False
        # ... so the next report carries them along with what changed since.
        sent = heard(first_api, 2)
        assert sent.partial
        assert [(t.task_id, t.state) for t in sent.task_details] == [("c", common_pb2.SUCCEEDED), ("d", common_pb2.RUNNING)]
        assert len(first_api.reports) == 3

        # Another API service knows nothing of the run: it gets every task.
        address = servers[1].address
        put(a, b, _entry("c", 3, "SUCCEEDED"), _entry("d", 4))
        sent = heard(second_api, 0)
        assert not sent.partial and len(sent.task_details) == 4
        stamps = [r.update_time.ToMicroseconds() for r in first_api.reports + second_api.reports]
        assert stamps == sorted(set(stamps))
        assert reporter.stats.full == 2 and reporter.stats.partial == 2
    finally:
        reporter.stop(flush_timeout=0)
        client.close()
        for server in servers:
            server.stop()
