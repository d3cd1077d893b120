"""The run service's rules, on a real SQLite database with an in-process scheduler double."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwell.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from stepwell.server import Database, upgrade
from stepwell_api.app import MIGRATIONS_DIR, VERSION_TABLE
from stepwell_api.domain import Handover, NewRun, RunState, StatusReport, TaskDetail
from stepwell_api.handover import HandoverLoop
from stepwell_api.service import RunService

SPEC = {
    "schemaVersion": "2.1.0",
    "pipelineInfo": {"name": "tiny"},
    "components": {"comp-a": {"executorLabel": "exec-a"}},
    "deploymentSpec": {"executors": {"exec-a": {"container": {"image": "alpine", "command": ["true"]}}}},
    "root": {
        "dag": {"tasks": {"a": {"taskInfo": {"name": "a"}, "componentRef": {"name": "comp-a"}}}},
        "inputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1}}},
    },
}


class Gateway:
    """A scheduler double: records calls; ``down`` makes every call Unavailable."""

    def __init__(self) -> None:
        self.down = False
        self.started: list[Handover] = []
        self.canceled: list[str] = []
        self.cancel_error: Exception | None = None
        self.on_start: Callable[[Handover], object] | None = None

    def start_run(self, handover: Handover) -> None:
        if self.down:
            raise Unavailable("scheduler down")
        if self.on_start is not None:
            self.on_start(handover)
        self.started.append(handover)

    def cancel_run(self, run_id: str) -> None:
        if self.down:
            raise Unavailable("scheduler down")
        if self.cancel_error is not None:
            raise self.cancel_error
        self.canceled.append(run_id)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'api.db'}")
    upgrade(database.engine, MIGRATIONS_DIR, VERSION_TABLE)
    yield database
    database.dispose()


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture
def service(db: Database, gateway: Gateway) -> RunService:
    return RunService(db, gateway, default_namespace="home")


def test_create_fills_defaults_and_namespace(service: RunService, gateway: Gateway) -> None:
    run = service.create_run(NewRun(pipeline_spec=SPEC, parameters={"n": 4.0}))
    assert run.parameters == {"n": 4} and isinstance(run.parameters["n"], int)
    assert run.namespace == "home"
    assert run.display_name.startswith("tiny ")
    assert run.handed_at is not None
    assert [h.run_id for h in gateway.started] == [run.run_id]


def test_wrapped_spec_keeps_its_platform_spec(service: RunService, gateway: Gateway) -> None:
    platform: dict[str, Any] = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {}}}}}
    run = service.create_run(NewRun(pipeline_spec={"pipeline_spec": SPEC, "platform_spec": platform}))
    assert run.pipeline_spec == {"pipeline_spec": SPEC, "platform_spec": platform}
    assert gateway.started[0].pipeline_spec == {"pipeline_spec": SPEC, "platform_spec": platform}


def test_too_long_namespace_is_refused(service: RunService) -> None:
    with pytest.raises(InvalidArgument, match="namespace"):
        service.create_run(NewRun(pipeline_spec=SPEC, namespace="n" * 64))


def test_pending_runs_are_handed_over_once_the_scheduler_is_back(service: RunService, gateway: Gateway) -> None:
    gateway.down = True
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    assert run.state == RunState.PENDING and run.handed_at is None
    assert service.hand_over_pending().unreachable
    gateway.down = False
    result = service.hand_over_pending()
    assert (result.handed, result.unreachable) == (1, False)
    assert service.get_run(run.run_id).handed_at is not None
    assert service.hand_over_pending().handed == 0  # acknowledged runs are not offered again


def test_terminate_while_the_handover_is_in_flight_cancels_after_the_ack(service: RunService, gateway: Gateway) -> None:
    gateway.down = True
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    gateway.down = False
    gateway.on_start = lambda h: service.terminate_run(h.run_id)  # the user terminates meanwhile
    service.hand_over_pending()
    assert gateway.canceled == [run.run_id]
    assert service.get_run(run.run_id).state == RunState.CANCELED


def test_cancel_is_retried_until_acknowledged(service: RunService, gateway: Gateway) -> None:
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    gateway.down = True
    assert service.terminate_run(run.run_id).state == RunState.CANCELING
    assert gateway.canceled == []
    gateway.down = False
    service.hand_over_pending()
    assert gateway.canceled == [run.run_id]
    service.hand_over_pending()
    assert gateway.canceled == [run.run_id]  # acknowledged once, not sent again


def test_cancel_of_a_run_the_scheduler_does_not_know_ends_it(service: RunService, gateway: Gateway) -> None:
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    gateway.cancel_error = NotFound("unknown run")
    service.terminate_run(run.run_id)
    assert service.get_run(run.run_id).state == RunState.CANCELED


def test_terminating_a_finished_run_is_a_failed_precondition(service: RunService) -> None:
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    service.report_status(StatusReport(run_id=run.run_id, state=RunState.FAILED, error="boom"))
    with pytest.raises(FailedPrecondition, match="already ended"):
        service.terminate_run(run.run_id)


def test_a_report_proves_the_scheduler_has_the_run(service: RunService, gateway: Gateway) -> None:
    gateway.down = True
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    service.report_status(StatusReport(run_id=run.run_id, state=RunState.RUNNING))
    gateway.down = False
    assert service.hand_over_pending().handed == 0
    assert service.get_run(run.run_id).handed_at is not None


def test_report_updates_only_changed_tasks(service: RunService) -> None:
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    tasks = [TaskDetail(task_id=f"t{i}", state=RunState.RUNNING) for i in range(3)]
    service.report_status(StatusReport(run_id=run.run_id, state=RunState.RUNNING, task_details=tasks))
    tasks[1] = TaskDetail(task_id="t1", state=RunState.SUCCEEDED)
    service.report_status(StatusReport(run_id=run.run_id, state=RunState.RUNNING, task_details=[tasks[2], tasks[1]]))
    got = service.get_run(run.run_id)
    assert [(t.task_id, t.state) for t in got.task_details] == [("t2", RunState.RUNNING), ("t1", RunState.SUCCEEDED)]


def test_report_without_state_is_refused(service: RunService) -> None:
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    with pytest.raises(InvalidArgument):
        service.report_status(StatusReport(run_id=run.run_id, state=RunState.RUNTIME_STATE_UNSPECIFIED))


def test_page_size_is_capped_and_tokens_are_tied_to_the_namespace(service: RunService) -> None:
    for _ in range(3):
        service.create_run(NewRun(pipeline_spec=SPEC))
    page = service.list_runs(page_size=1000)
    assert len(page.runs) == 3 and page.next_page_token == ""
    first = service.list_runs(page_size=1)
    with pytest.raises(InvalidArgument, match="namespace"):
        service.list_runs(namespace="other", page_size=1, page_token=first.next_page_token)
    with pytest.raises(InvalidArgument, match="page_size"):
        service.list_runs(page_size=-1)


def test_handover_loop_hands_over_in_the_background(service: RunService, gateway: Gateway) -> None:
    gateway.down = True
    run = service.create_run(NewRun(pipeline_spec=SPEC))
    loop = HandoverLoop(service, interval=0.05, max_backoff=0.1)
    loop.start()
    try:
        gateway.down = False
        loop.wake()
        import time

        deadline = time.monotonic() + 5
        while not gateway.started and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        loop.stop()
    assert [h.run_id for h in gateway.started] == [run.run_id]


def test_spec_cache_is_bounded_and_never_remembers_a_refused_spec() -> None:
    from stepwell_api.specs import SpecCache

    cache = SpecCache(max_entries=2)
    loads: list[str] = []

    def load(name: str) -> Callable[[], dict[str, Any]]:
        def spec() -> dict[str, Any]:
            loads.append(name)
            return {**SPEC, "pipelineInfo": {"name": name}}
        return spec

    assert cache.check(b"a", load("a")).name == "a"
    assert cache.check(b"a", load("a")).name == "a" and loads == ["a"]  # a hit: not loaded again
    cache.check(b"b", load("b"))
    cache.check(b"c", load("c"))  # evicts "a", the least recently used
    assert len(cache) == 2
    cache.check(b"a", load("a"))
    assert loads == ["a", "b", "c", "a"]
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            cache.check(b"bad", lambda: {**SPEC, "schemaVersion": "1.0"})
    assert b"bad" not in cache._entries
    assert cache.check(b"", load("x")).name == "x" and len(cache) == 2  # no digest: not remembered


def test_foreground_deletion_keeps_the_recurring_run_while_the_scheduler_is_down(
    service: RunService, gateway: Gateway, db: Database
) -> None:
    from stepwell_api.recurring import RecurringRunService
    from stepwell_api.resources import RecurringRunChange, Trigger

    recurring = RecurringRunService(db, service)
    created = recurring.create(RecurringRunChange(display_name="r", pipeline_spec=SPEC, trigger=Trigger(interval_second=1)))
    from datetime import datetime, timedelta, timezone

    assert recurring.fire_due(now=datetime.now(timezone.utc) + timedelta(seconds=1.5)) == 1
    service.hand_over_pending()
    (run,) = service.list_runs().runs
    service.report_status(StatusReport(run_id=run.run_id, state=RunState.RUNNING))
    gateway.down = True
    with pytest.raises(Unavailable, match="retry"):
        recurring.delete(created.recurring_run_id, propagation="FOREGROUND")
    kept = recurring.get(created.recurring_run_id)
    assert not kept.enabled and service.get_run(run.run_id).state == RunState.CANCELING
    gateway.down = False
    recurring.delete(created.recurring_run_id, propagation="FOREGROUND")
    assert gateway.canceled == [run.run_id]
    with pytest.raises(NotFound):
        recurring.get(created.recurring_run_id)
    with pytest.raises(InvalidArgument, match="propagation_policy"):
        recurring.delete("x", propagation="SIDEWAYS")
