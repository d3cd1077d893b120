"""Partial status reports and incremental watching, end to end: the API, scheduler and
metadata services in this process (as ``stepwell run`` starts them), on SQLite and on
Postgres."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwell.cli.embedded import EmbeddedStack
from stepwell.client import Client
from stepwell.client.convert import RunWatch
from stepwell.client.types import Run
from stepwell.v1 import common_pb2, run_pb2
from tests.integration.scheduler.many_tasks import PICKY_FAILURES, loop_spec, picky_spec

ITEMS = 30


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedStack]:
    overrides: dict[str, Any] = {"cache_enabled": False}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("fresh_pg_url")
    with EmbeddedStack(home=tmp_path / "home", overrides=overrides) as running:
        yield running


def _scheduler(stack: EmbeddedStack) -> Any:
    return next(app for app in stack._apps if type(app).__name__ == "SchedulerApp")


class SpyingRuns:
    """The client's RunService stub, recording each GetRun request and reply."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self.calls: list[tuple[run_pb2.GetRunRequest, run_pb2.Run]] = []

    def GetRun(self, request: run_pb2.GetRunRequest, timeout: float | None = None) -> run_pb2.Run:
        reply = self._stub.GetRun(request, timeout=timeout)
        self.calls.append((request, reply))
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)


def _scheduler_view(stack: EmbeddedStack, run_id: str) -> dict[str, tuple[str, int, str]]:
    status = _scheduler(stack).service.status(run_id)
    return {
        t.task_id: (common_pb2.RuntimeState.Name(t.state), t.execution_id, t.parent_task_id)
        for t in status.task_details
    }


def _api_view(run: Run) -> dict[str, tuple[str, int, str]]:
    return {t.task_id: (t.state, t.execution_id, t.parent_task_id) for t in run.tasks}


def test_watch_run_merges_changed_tasks_into_the_whole_run(stack: EmbeddedStack, tmp_path: Path) -> None:
    reporter = _scheduler(stack).reporter
    # The status cache also reads a run whole every 2 s (a safety net for a writer that
    # forgot to tell it): on a loaded machine a report can fall there and go out full.
    # This test is about the reports that follow what the engine wrote.
    _scheduler(stack).service._statuses.full_every = 3600.0
    full_before, partial_before = reporter.stats.full, reporter.stats.partial
    with Client(stack.api_address) as client:
        spy = SpyingRuns(client._runs)
        client._runs = spy  # type: ignore[assignment]
        run_id = client.create_run(loop_spec(ITEMS, tmp_path)).run_id
        seen = list(client.watch_run(run_id, interval=0.02, timeout=180))
        full = client.get_run(run_id)

    final = seen[-1]
    assert final.state == "SUCCEEDED" and full.state == "SUCCEEDED"
    assert len(final.tasks) == 2 * ITEMS + 1
    assert final.tasks == full.tasks  # the same tasks, fields and order as a full GetRun
    assert _api_view(full) == _scheduler_view(stack, run_id)
    for run in seen:
        assert len({t.task_id for t in run.tasks}) == len(run.tasks)
    counts = [len(run.tasks) for run in seen]
    assert counts == sorted(counts)  # nothing was dropped on the way

    watched = spy.calls[: -1]  # the last call is the full GetRun
    assert all(request.omit_pipeline_spec for request, _ in watched)
    assert not any(reply.HasField("pipeline_spec") for _, reply in watched)
    assert watched[0][0].tasks_after_version == 0
    for (_, reply), (request, _) in itertools.pairwise(watched):
        assert request.tasks_after_version == reply.status_version
    assert any(reply.partial_tasks for _, reply in watched), "every reply listed every task"
    # The scheduler's reports were partial too: all but the run's first and final one
    # (how many there are depends on the machine's speed: reports are spaced by their cost).
    assert reporter.stats.full - full_before <= 2, reporter.stats
    versions = {reply.status_version for _, reply in spy.calls if reply.status_version}
    assert reporter.stats.partial - partial_before >= len(versions) - 2, (reporter.stats, versions)


def test_after_a_retry_from_failure_the_api_has_exactly_the_schedulers_tasks(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with Client(stack.api_address) as client:
        run_id = client.create_run(picky_spec(tmp_path), {"marker": str(marker)}).run_id
        failed = client.wait_for_run_completion(run_id, timeout=180)
        assert failed.state == "FAILED"
        assert {t.task_id for t in failed.tasks if t.state == "FAILED"} >= PICKY_FAILURES
        assert failed.tasks == client.get_run(run_id).tasks
        # A watcher that saw the failed run.
        watch = RunWatch(run_id)
        assert watch.update(client._runs.GetRun(watch.request())) is not None

        marker.write_text("here")
        client.retry_run(run_id)
        done = client.wait_for_run_completion(run_id, timeout=180)
        full = client.get_run(run_id)
        assert done.state == "SUCCEEDED", done.error
        assert done.tasks == full.tasks
        assert _api_view(full) == _scheduler_view(stack, run_id)
        assert all(t.state == "SUCCEEDED" for t in full.tasks)

        # That watcher catching up: the failed tasks were created anew, which the API
        # service sees as removed tasks (every task is listed) or, when it never saw
        # them gone, as changed ones; those the watcher does not merge in place (the
        # server may list them elsewhere now) but asks for every task again.
        caught_up = watch.update(client._runs.GetRun(watch.request()))
        if watch.stale:
            assert caught_up is None and watch.request().tasks_after_version == 0
            caught_up = watch.update(client._runs.GetRun(watch.request()))
        assert caught_up is not None and caught_up.tasks == full.tasks
