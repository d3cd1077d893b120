"""Which tasks a status report carries: ``report_request`` against what the API acknowledged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from stepwell.v1 import common_pb2, run_pb2
from stepwell_scheduler.api_client import changed_tasks, report_request
from stepwell_scheduler.status import RunSnapshot, TaskEntry

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _entry(task_id: str, row_id: int, state: str = "RUNNING") -> TaskEntry:
    signature = (row_id, task_id, state)
    detail = run_pb2.TaskDetail(task_id=task_id, state=state)  # type: ignore[arg-type]
    return TaskEntry(task_id, signature, (T0 + timedelta(seconds=row_id), row_id), False, detail)


def _snapshot(*entries: TaskEntry, state: str = "RUNNING") -> RunSnapshot:
    return RunSnapshot("run-1", state, "", {}, {e.task_id: e for e in entries})


def _acked(snapshot: RunSnapshot) -> dict[str, Any]:
    return {t: e.signature for t, e in snapshot.tasks.items()}


def test_first_report_is_full_and_ordered_by_readiness() -> None:
    snapshot = _snapshot(_entry("b", 2), _entry("a", 1))
    request, changed = report_request(snapshot, None)
    assert changed is None and not request.partial
    assert [t.task_id for t in request.task_details] == ["a", "b"]
    assert request.run_id == "run-1" and request.state == common_pb2.RUNNING


def test_later_reports_carry_only_new_and_changed_tasks() -> None:
    before = _snapshot(_entry("a", 1), _entry("b", 2), _entry("c", 3))
    acked = _acked(before)
    # Unchanged entries are the same objects from one snapshot to the next.
    now = _snapshot(before.tasks["a"], _entry("b", 2, "SUCCEEDED"), before.tasks["c"], _entry("e", 5), _entry("d", 4))
    request, changed = report_request(now, acked)
    assert request.partial
    assert sorted(changed or []) == ["b", "d", "e"]
    assert [(t.task_id, t.state) for t in request.task_details] == [
        ("b", common_pb2.SUCCEEDED),
        ("d", common_pb2.RUNNING),
        ("e", common_pb2.RUNNING),
    ]
    # An equal signature in another object is no change either.
    same = _snapshot(_entry("a", 1), _entry("b", 2), _entry("c", 3))
    assert changed_tasks(same, acked) == []


def test_a_task_gone_since_the_acknowledged_report_makes_it_full() -> None:
    acked = _acked(_snapshot(_entry("a", 1), _entry("b", 2)))
    # "b" was deleted (a retry) and a new task came: the counts alone would match.
    now = _snapshot(_entry("a", 1), _entry("c", 3))
    assert changed_tasks(now, acked) is None
    request, changed = report_request(now, acked)
    assert changed is None and not request.partial
    assert [t.task_id for t in request.task_details] == ["a", "c"]
    # Recreated under the same name (a new row): a change, not a removal.
    recreated = _snapshot(_entry("a", 1), _entry("b", 7))
    assert changed_tasks(recreated, acked) == ["b"]


def test_the_report_of_an_ended_run_is_full() -> None:
    snapshot = _snapshot(_entry("a", 1, "SUCCEEDED"), _entry("b", 2, "SUCCEEDED"), state="SUCCEEDED")
    request, changed = report_request(snapshot, _acked(snapshot))
    assert changed is None and not request.partial
    assert [t.task_id for t in request.task_details] == ["a", "b"]
    assert request.state == common_pb2.SUCCEEDED


def test_run_outputs_are_sent() -> None:
    snapshot = RunSnapshot("run-1", "RUNNING", "", {"parameters": {"Output": 3}}, {})
    request, _ = report_request(snapshot, {})
    assert request.outputs.parameters["Output"] == 3
