"""Partial status reports and versioned GetRun (watchers), over real gRPC and HTTP, on
SQLite and on Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import httpx
import pytest
from alembic import command
from alembic.config import Config
from google.protobuf import json_format
from sqlalchemy import text

from stepwell.server import Database, upgrade
from stepwell.v1 import common_pb2, run_pb2
from stepwell_api.app import MIGRATIONS_DIR, VERSION_TABLE

#: Fixtures from conftest.py: ``api`` (a RunningApi) and ``hello_spec`` (an IR dict).
Api = Any
Spec = dict[str, Any]

S = common_pb2.RuntimeState
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def create(api: Api, spec: Spec) -> str:
    run = run_pb2.Run()
    json_format.ParseDict(spec, run.pipeline_spec)
    run.runtime_config.parameters["msg"].string_value = "hi"
    reply: run_pb2.Run = api.stub.CreateRun(run_pb2.CreateRunRequest(run=run), timeout=10)
    return reply.run_id


def task(task_id: str, state: int = S.RUNNING, **fields: Any) -> run_pb2.TaskDetail:
    return run_pb2.TaskDetail(task_id=task_id, state=state, **fields)


def report(
    api: Api,
    run_id: str,
    tasks: list[run_pb2.TaskDetail],
    partial: bool,
    second: int,
    state: int = S.RUNNING,
) -> None:
    request = run_pb2.ReportRunStatusRequest(run_id=run_id, state=state, task_details=tasks, partial=partial)
    request.update_time.FromDatetime(T0 + timedelta(seconds=second))
    api.stub.ReportRunStatus(request, timeout=10)


def get(api: Api, run_id: str, after: int = 0, omit_spec: bool = False) -> run_pb2.Run:
    reply: run_pb2.Run = api.stub.GetRun(
        run_pb2.GetRunRequest(run_id=run_id, tasks_after_version=after, omit_pipeline_spec=omit_spec), timeout=10
    )
    return reply


def states(run: run_pb2.Run) -> list[tuple[str, str]]:
    return [(t.task_id, common_pb2.RuntimeState.Name(t.state)) for t in run.task_details]


def kfp_ids(run: run_pb2.Run) -> list[str]:
    return [t.task_id for t in run.run_details.task_details]


# -- ReportRunStatus ------------------------------------------------------------------


def test_a_partial_report_updates_listed_tasks_and_keeps_the_others(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a"), task("b"), task("c")], partial=False, second=1)

    done = task("b", S.SUCCEEDED, execution_id=7)
    done.outputs.parameters["Output"] = "x"
    done.end_time.FromDatetime(T0 + timedelta(seconds=2))
    report(api, run_id, [task("e"), done, task("d")], partial=True, second=2)

    run = get(api, run_id)
    # New tasks go after the existing ones, in report order; listed ones keep their place.
    assert states(run) == [("a", "RUNNING"), ("b", "SUCCEEDED"), ("c", "RUNNING"), ("e", "RUNNING"), ("d", "RUNNING")]
    b = run.task_details[1]
    assert b.execution_id == 7 and dict(b.outputs.parameters) == {"Output": "x"}
    assert b.end_time.ToDatetime(tzinfo=timezone.utc) == T0 + timedelta(seconds=2)
    assert kfp_ids(run) == ["a", "b", "c", "e", "d"]
    assert not run.partial_tasks
    assert api.count_rows("api_run_tasks") == 5

    # A partial report with no tasks changes the run only.
    report(api, run_id, [], partial=True, second=3, state=S.SUCCEEDED)
    run = get(api, run_id)
    assert run.state == S.SUCCEEDED and len(run.task_details) == 5


def test_a_full_report_deletes_the_tasks_it_does_not_list(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a"), task("b"), task("c")], partial=False, second=1)
    report(api, run_id, [task("c", S.SUCCEEDED), task("a")], partial=False, second=2)
    # A full report's order is the order of the details.
    assert states(get(api, run_id)) == [("c", "SUCCEEDED"), ("a", "RUNNING")]
    assert api.count_rows("api_run_tasks") == 2


def test_status_version_counts_the_reports_applied(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    assert get(api, run_id).status_version == 0
    report(api, run_id, [task("a")], partial=False, second=5)
    assert get(api, run_id).status_version == 1
    report(api, run_id, [task("a", S.SUCCEEDED)], partial=True, second=6)
    report(api, run_id, [], partial=True, second=7)
    assert get(api, run_id).status_version == 3

    # Reports that are ignored do not count: an older one, and one leaving a final state.
    report(api, run_id, [task("z")], partial=True, second=1)
    assert get(api, run_id).status_version == 3
    report(api, run_id, [task("a")], partial=True, second=8, state=S.FAILED)
    report(api, run_id, [task("z")], partial=True, second=9, state=S.RUNNING)
    run = get(api, run_id)
    assert run.status_version == 4 and run.state == S.FAILED
    assert [t.task_id for t in run.task_details] == ["a"]
    assert api.query("SELECT status_version FROM api_runs WHERE run_id = :id", id=run_id) == 4


def test_a_stale_partial_report_is_ignored(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a"), task("b")], partial=False, second=10)
    report(api, run_id, [task("a", S.FAILED), task("new")], partial=True, second=9)
    run = get(api, run_id)
    assert states(run) == [("a", "RUNNING"), ("b", "RUNNING")]
    assert run.status_version == 1


def test_a_partial_report_keeps_a_canceling_run_canceling(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a")], partial=False, second=1)
    api.stub.TerminateRun(run_pb2.TerminateRunRequest(run_id=run_id), timeout=10)
    report(api, run_id, [task("a", S.CANCELING)], partial=True, second=2)
    run = get(api, run_id)
    assert run.state == S.CANCELING and states(run) == [("a", "CANCELING")]
    report(api, run_id, [task("a", S.CANCELED)], partial=True, second=3, state=S.CANCELED)
    assert get(api, run_id).state == S.CANCELED


def test_repeated_task_ids_in_one_report_count_once(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a"), task("a", S.FAILED)], partial=True, second=1)
    report(api, run_id, [task("b"), task("b", S.FAILED), task("a")], partial=False, second=2)
    assert states(get(api, run_id)) == [("b", "RUNNING"), ("a", "RUNNING")]


# -- GetRun for watchers --------------------------------------------------------------


def test_get_run_after_a_version_lists_only_the_tasks_changed_since(api: Api, hello_spec: Spec) -> None:
    def tasks(**states: int) -> list[run_pb2.TaskDetail]:
        """The run's eight tasks, the named loop iterations in the given states."""
        listed = [task("root", kind="dag"), task("loop", kind="loop", parent_task_id="root")]
        for i in range(6):
            listed.append(task(f"loop/echo[{i}]", states.get(f"echo{i}", S.RUNNING), parent_task_id="loop"))
        return listed

    def echo(i: int, state: int = S.RUNNING) -> run_pb2.TaskDetail:
        return task(f"loop/echo[{i}]", state, parent_task_id="loop")

    run_id = create(api, hello_spec)
    report(api, run_id, tasks(), partial=False, second=1)
    assert get(api, run_id).status_version == 1

    report(api, run_id, [echo(2, S.SUCCEEDED), echo(4, S.FAILED)], partial=True, second=2)
    run = get(api, run_id, after=1)
    assert run.partial_tasks and run.status_version == 2
    assert states(run) == [("loop/echo[2]", "SUCCEEDED"), ("loop/echo[4]", "FAILED")]
    assert kfp_ids(run) == ["loop/echo[2]", "loop/echo[4]"]
    assert run.state == S.RUNNING and run.HasField("pipeline_spec")  # the run itself is always whole

    # Nothing changed since the latest version: no tasks, still partial.
    latest = get(api, run_id, after=2)
    assert latest.partial_tasks and list(latest.task_details) == [] and list(latest.run_details.task_details) == []

    # A full report lists every task but writes (and versions) only the rows that changed.
    report(api, run_id, tasks(echo2=S.SUCCEEDED, echo4=S.FAILED, echo5=S.SUCCEEDED), partial=False, second=3)
    assert states(get(api, run_id, after=2)) == [("loop/echo[5]", "SUCCEEDED")]

    # A changed parent lists all its children in the KFP copy, not only the changed ones.
    report(api, run_id, [task("loop", S.SUCCEEDED, kind="loop", parent_task_id="root")], partial=True, second=4)
    run = get(api, run_id, after=3)
    assert kfp_ids(run) == ["loop"]
    assert [c.task_id for c in run.run_details.task_details[0].child_tasks] == [f"loop/echo[{i}]" for i in range(6)]

    # A task added under an existing parent brings the parent along: its children changed.
    report(api, run_id, [echo(6)], partial=True, second=5)
    run = get(api, run_id, after=4)
    assert [t.task_id for t in run.task_details] == ["loop", "loop/echo[6]"]
    assert [c.task_id for c in run.run_details.task_details[0].child_tasks] == [f"loop/echo[{i}]" for i in range(7)]

    # Without a version every task comes back, in order.
    full = get(api, run_id)
    assert not full.partial_tasks and full.status_version == 5
    assert [t.task_id for t in full.task_details] == ["root", "loop"] + [f"loop/echo[{i}]" for i in range(7)]
    assert kfp_ids(full) == [t.task_id for t in full.task_details]


def test_after_tasks_were_removed_an_older_version_gets_every_task(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a"), task("b"), task("c")], partial=False, second=1)
    report(api, run_id, [task("a", S.SUCCEEDED)], partial=True, second=2)  # version 2
    report(api, run_id, [task("a", S.SUCCEEDED), task("c")], partial=False, second=3)  # removes b: version 3
    report(api, run_id, [task("c", S.SUCCEEDED)], partial=True, second=4)  # version 4

    for before_removal in (1, 2):
        run = get(api, run_id, after=before_removal)
        assert not run.partial_tasks
        assert states(run) == [("a", "SUCCEEDED"), ("c", "SUCCEEDED")]
        assert kfp_ids(run) == ["a", "c"]
    # A watcher that has seen the removal gets only what changed after it.
    run = get(api, run_id, after=3)
    assert run.partial_tasks and states(run) == [("c", "SUCCEEDED")]
    assert get(api, run_id, after=4).partial_tasks

    # A version the run never reached is from another history: every task.
    run = get(api, run_id, after=5)
    assert not run.partial_tasks and len(run.task_details) == 2


def test_omit_pipeline_spec(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a")], partial=False, second=1)
    whole = get(api, run_id)
    assert whole.HasField("pipeline_spec") and whole.pipeline_spec.fields["pipelineInfo"]
    lean = get(api, run_id, omit_spec=True)
    assert not lean.HasField("pipeline_spec")
    assert lean.display_name == whole.display_name and states(lean) == [("a", "RUNNING")]
    assert lean.runtime_config == whole.runtime_config and lean.status_version == 1


def test_a_negative_version_is_invalid_argument(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    with pytest.raises(grpc.RpcError) as caught:
        get(api, run_id, after=-1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tasks_after_version" in caught.value.details()

    reply = httpx.get(
        f"http://127.0.0.1:{api.app.http_port}/apis/v2beta1/runs/{run_id}", params={"tasks_after_version": -1}, timeout=5
    )
    assert reply.status_code == 400
    assert reply.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "tasks_after_version" in reply.json()["message"]


def test_rest_passes_the_watcher_parameters(api: Api, hello_spec: Spec) -> None:
    run_id = create(api, hello_spec)
    report(api, run_id, [task("a"), task("b")], partial=False, second=1)
    report(api, run_id, [task("b", S.SUCCEEDED)], partial=True, second=2)
    url = f"http://127.0.0.1:{api.app.http_port}/apis/v2beta1/runs/{run_id}"

    body = httpx.get(url, params={"tasks_after_version": 1, "omit_pipeline_spec": "true"}, timeout=5).json()
    assert body["status_version"] == "2"  # int64 as a string, as grpc-gateway writes it
    assert body["partial_tasks"] is True
    assert "pipeline_spec" not in body
    assert [t["task_id"] for t in body["task_details"]] == ["b"]
    assert [t["task_id"] for t in body["run_details"]["task_details"]] == ["b"]

    body = httpx.get(url, timeout=5).json()
    assert "partial_tasks" not in body and body["status_version"] == "2" and "pipeline_spec" in body
    assert [t["task_id"] for t in body["task_details"]] == ["a", "b"]


# -- migration ------------------------------------------------------------------------


def test_runs_recorded_before_status_versions_start_at_zero(db_url: str) -> None:
    db = Database(db_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["version_table"] = VERSION_TABLE
            command.upgrade(cfg, "0002")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO api_runs (run_id, display_name, description, namespace, experiment_id, pipeline_name,"
                " pipeline_spec, platform_spec, parameters, pipeline_root, state, error, outputs, created_at,"
                " handover_attempts) VALUES ('r1', 'old', '', '', '', 'p', '{}', '{}', '{}', '', 'RUNNING', '', '{}',"
                " :now, 0)"
            ), {"now": T0})
            conn.execute(text(
                "INSERT INTO api_run_tasks (run_id, task_id, position, display_name, state, execution_id, outputs,"
                " error, log_tail, log_uri, parent_task_id, kind) VALUES ('r1', 'a', 0, '', 'RUNNING', 0, '{}', '',"
                " '', '', '', '')"
            ))
        upgrade(db.engine, MIGRATIONS_DIR, VERSION_TABLE)
        with db.engine.connect() as conn:
            run = conn.execute(text("SELECT status_version, tasks_removed_version FROM api_runs")).one()
            version = conn.execute(text("SELECT version FROM api_run_tasks")).scalar()
    finally:
        db.dispose()
    assert tuple(run) == (0, 0) and version == 0
