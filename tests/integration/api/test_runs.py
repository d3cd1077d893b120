"""The API service's RunService over real gRPC, on SQLite and on Postgres."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from stepwell.v1 import common_pb2, run_pb2
from tests.processes import free_port

#: Fixtures from conftest.py: ``api`` (a RunningApi), ``fake_scheduler`` (a FakeScheduler),
#: ``start_api`` / ``start_scheduler`` (factories), ``hello_spec`` and ``adder_spec`` (IR dicts).
Api = Any
Fake = Any
Spec = dict[str, Any]

S = common_pb2.RuntimeState


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def run_message(spec: Spec | None, params: dict[str, Any] | None = None, **fields: Any) -> run_pb2.Run:
    pipeline_root = fields.pop("pipeline_root", "")
    run = run_pb2.Run(**fields)
    run.runtime_config.pipeline_root = pipeline_root
    if spec is not None:
        json_format.ParseDict(spec, run.pipeline_spec)
    for name, value in (params or {}).items():
        json_format.ParseDict(value, run.runtime_config.parameters[name])
    return run


def create(api: Api, spec: Spec, params: dict[str, Any] | None = None, **fields: Any) -> run_pb2.Run:
    reply: run_pb2.Run = api.stub.CreateRun(
        run_pb2.CreateRunRequest(run=run_message(spec, params, **fields)), timeout=10
    )
    return reply


def get(api: Api, run_id: str) -> run_pb2.Run:
    reply: run_pb2.Run = api.stub.GetRun(run_pb2.GetRunRequest(run_id=run_id), timeout=10)
    return reply


def params_of(run: run_pb2.Run) -> dict[str, Any]:
    return {k: json_format.MessageToDict(v) for k, v in run.runtime_config.parameters.items()}


def task(task_id: str, state: int, **fields: Any) -> run_pb2.TaskDetail:
    return run_pb2.TaskDetail(task_id=task_id, state=state, **fields)


# -- CreateRun ------------------------------------------------------------------------


def test_create_run_records_pending_and_hands_over(api: Api, fake_scheduler: Fake, hello_spec: Spec) -> None:
    run = create(api, hello_spec, {"msg": "hi"}, description="first", pipeline_root="/tmp/root")

    assert run.state == S.PENDING
    assert run.run_id and run.pipeline_name == "hello"
    assert run.display_name.startswith("hello ")  # defaulted: "<pipeline> <timestamp>"
    assert run.description == "first"
    assert params_of(run) == {"msg": "hi", "times": 3}
    assert run.runtime_config.pipeline_root == "/tmp/root"
    assert run.created_at.seconds > 0 and run.scheduled_at == run.created_at
    assert not run.HasField("finished_at")

    assert fake_scheduler.started_ids() == [run.run_id]
    started = fake_scheduler.started[0]
    assert started["parameters"] == {"msg": "hi", "times": 3}
    assert started["pipeline_spec"] == json_format.MessageToDict(run_message(hello_spec).pipeline_spec)
    assert started["pipeline_root"] == "/tmp/root"
    assert started["namespace"] == ""
    assert api.handed_at(run.run_id) is not None

    got = get(api, run.run_id)
    assert got == run
    assert api.count_rows() == 1


def test_create_run_of_a_kfp_compiled_pipeline(api: Api, fake_scheduler: Fake, adder_spec: Spec) -> None:
    run = create(api, adder_spec, {"a": 4}, display_name="add them")
    assert run.display_name == "add them"
    assert run.pipeline_name == "adder"
    assert params_of(run) == {"a": 4, "b": 2.5, "label": "sum"}
    assert fake_scheduler.started_ids() == [run.run_id]
    assert fake_scheduler.started[0]["parameters"] == {"a": 4, "b": 2.5, "label": "sum"}
    assert set(fake_scheduler.started[0]["pipeline_spec"]["components"]) == set(adder_spec["components"])


def _drop(key: str) -> Callable[[Spec], Spec]:
    return lambda spec: {k: v for k, v in spec.items() if k != key}


def _set(key: str, value: Any) -> Callable[[Spec], Spec]:
    return lambda spec: {**spec, key: value}


def _same(spec: Spec) -> Spec:
    return spec


BAD_INPUTS = [
    pytest.param(_set("schemaVersion", "2.0.0"), {"msg": "x"}, "schemaVersion", id="old-schema"),
    pytest.param(_drop("root"), {"msg": "x"}, "root", id="no-root"),
    pytest.param(_set("pipelineInfo", {}), {"msg": "x"}, "pipelineInfo.name", id="no-name"),
    pytest.param(_set("bogusField", 1), {"msg": "x"}, "bogusField", id="schema"),
    pytest.param(_same, {"msg": "x", "colour": "red"}, "'colour'", id="unknown-param"),
    pytest.param(_same, {"msg": "x", "times": "three"}, "'times'", id="ill-typed-param"),
    pytest.param(_same, {"msg": "x", "times": 2.5}, "'times'", id="fractional-int"),
    pytest.param(_same, {"msg": 5}, "'msg'", id="number-for-string"),
    pytest.param(_same, {}, "'msg'", id="missing-required"),
]


@pytest.mark.parametrize(("mutate", "params", "named"), BAD_INPUTS)
def test_bad_input_is_invalid_argument_and_writes_nothing(
    api: Api, fake_scheduler: Fake, hello_spec: Spec, mutate: Callable[[Spec], Spec], params: dict[str, Any], named: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        create(api, mutate(hello_spec), params)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in caught.value.details()
    assert api.count_rows() == 0
    assert fake_scheduler.started == []


def test_missing_spec_is_invalid_argument(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.CreateRun(run_pb2.CreateRunRequest(run=run_pb2.Run(display_name="x")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pipeline_spec" in caught.value.details()
    assert api.count_rows() == 0


def test_run_waits_while_the_scheduler_is_down_then_is_handed_over(
    start_api: Callable[[str], Api], start_scheduler: Callable[..., Any], hello_spec: Spec
) -> None:
    port = free_port()
    api = start_api(f"127.0.0.1:{port}")
    run = create(api, hello_spec, {"msg": "later"})
    assert run.state == S.PENDING
    time.sleep(0.5)  # a few failed handover passes
    assert api.handed_at(run.run_id) is None
    assert get(api, run.run_id).state == S.PENDING

    fake, _ = start_scheduler(port)
    wait_for(lambda: run.run_id in fake.started_ids(), timeout=15, what="the retried StartRun")
    wait_for(lambda: api.handed_at(run.run_id) is not None, what="the handover to be recorded")
    assert fake.started[0]["parameters"] == {"msg": "later", "times": 3}
    assert get(api, run.run_id).state == S.PENDING  # until the scheduler reports


def test_a_pending_run_left_by_a_previous_process_is_handed_over_at_start(
    start_api: Callable[[str], Api], start_scheduler: Callable[..., Any], hello_spec: Spec
) -> None:
    port = free_port()
    first = start_api(f"127.0.0.1:{port}")
    run = create(first, hello_spec, {"msg": "x"})
    first.close()

    fake, _ = start_scheduler(port)
    start_api(f"127.0.0.1:{port}")
    wait_for(lambda: run.run_id in fake.started_ids(), what="StartRun after the restart")


def test_a_run_the_scheduler_refuses_fails(api: Api, fake_scheduler: Fake, hello_spec: Spec) -> None:
    fake_scheduler.refuse_with = "executor 'gpu' is not available"
    run = create(api, hello_spec, {"msg": "x"})
    assert run.state == S.FAILED
    assert "executor 'gpu' is not available" in run.error.message
    assert run.HasField("finished_at")


# -- ReportRunStatus ------------------------------------------------------------------


def test_reported_status_shows_in_get_run(api: Api, hello_spec: Spec) -> None:
    run = create(api, hello_spec, {"msg": "x"})
    started = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    report = run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.RUNNING)
    report.task_details.append(task("root", S.RUNNING, kind="dag", display_name="hello"))
    echo = task("echo", S.RUNNING, kind="container", parent_task_id="root", execution_id=7)
    echo.start_time.FromDatetime(started)
    report.task_details.append(echo)
    report.update_time.FromDatetime(started)
    api.stub.ReportRunStatus(report)

    got = get(api, run.run_id)
    assert got.state == S.RUNNING
    assert [t.task_id for t in got.task_details] == ["root", "echo"]
    assert got.task_details[1].start_time.ToDatetime(tzinfo=timezone.utc) == started
    assert got.task_details[1].execution_id == 7
    assert got.task_details[1].parent_task_id == "root"
    assert got.task_details[1].kind == "container"
    assert not got.HasField("finished_at")

    done = run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.SUCCEEDED)
    done.update_time.FromDatetime(started + timedelta(seconds=5))
    done.outputs.parameters.update({"Output": "hi"})
    echo_done = task("echo", S.SUCCEEDED, kind="container", parent_task_id="root", log_uri="/logs/echo")
    echo_done.outputs.parameters.update({"Output": 3})
    art = echo_done.outputs.artifacts["data"].artifacts.add(
        uri="s3://b/k", schema_title="system.Dataset", artifact_id=9, size_bytes=12, sha256="ab"
    )
    art.metadata.update({"rows": 5})
    done.task_details.append(echo_done)
    api.stub.ReportRunStatus(done)

    got = get(api, run.run_id)
    assert got.state == S.SUCCEEDED
    assert got.finished_at.ToDatetime(tzinfo=timezone.utc) == started + timedelta(seconds=5)
    assert json_format.MessageToDict(got.outputs.parameters) == {"Output": "hi"}
    assert [t.task_id for t in got.task_details] == ["echo"]  # replaced, not merged
    detail = got.task_details[0]
    assert detail.state == S.SUCCEEDED and detail.log_uri == "/logs/echo"
    assert json_format.MessageToDict(detail.outputs.parameters) == {"Output": 3}
    ref = detail.outputs.artifacts["data"].artifacts[0]
    assert (ref.uri, ref.schema_title, ref.artifact_id, ref.size_bytes, ref.sha256) == (
        "s3://b/k", "system.Dataset", 9, 12, "ab"
    )
    assert json_format.MessageToDict(ref.metadata) == {"rows": 5}
    assert api.count_rows("api_run_tasks") == 1

    # A stale report never moves a run out of its final state.
    api.stub.ReportRunStatus(run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.RUNNING))
    assert get(api, run.run_id).state == S.SUCCEEDED


def test_report_older_than_the_last_is_ignored(api: Api, hello_spec: Spec) -> None:
    run = create(api, hello_spec, {"msg": "x"})
    now = datetime.now(timezone.utc)
    newer = run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.RUNNING)
    newer.update_time.FromDatetime(now)
    newer.task_details.append(task("echo", S.RUNNING))
    api.stub.ReportRunStatus(newer)
    older = run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.PENDING)
    older.update_time.FromDatetime(now - timedelta(seconds=1))
    api.stub.ReportRunStatus(older)
    got = get(api, run.run_id)
    assert got.state == S.RUNNING and [t.task_id for t in got.task_details] == ["echo"]


def test_report_for_an_unknown_run_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ReportRunStatus(run_pb2.ReportRunStatusRequest(run_id="nope", state=S.RUNNING))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in caught.value.details()


def test_report_without_a_state_is_invalid(api: Api, hello_spec: Spec) -> None:
    run = create(api, hello_spec, {"msg": "x"})
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ReportRunStatus(run_pb2.ReportRunStatusRequest(run_id=run.run_id))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- GetRun / TerminateRun ------------------------------------------------------------


def test_get_unknown_run_is_not_found_naming_the_id(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        get(api, "no-such-run")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-run" in caught.value.details()


def test_terminate_cancels_through_the_scheduler(api: Api, fake_scheduler: Fake, hello_spec: Spec) -> None:
    run = create(api, hello_spec, {"msg": "x"})
    api.stub.ReportRunStatus(run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.RUNNING))

    terminated = api.stub.TerminateRun(run_pb2.TerminateRunRequest(run_id=run.run_id))
    assert terminated.state == S.CANCELING
    assert fake_scheduler.canceled == [run.run_id]

    # The scheduler's in-flight RUNNING report does not undo the CANCELING.
    api.stub.ReportRunStatus(run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.RUNNING))
    assert get(api, run.run_id).state == S.CANCELING

    api.stub.ReportRunStatus(run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=S.CANCELED))
    got = get(api, run.run_id)
    assert got.state == S.CANCELED and got.HasField("finished_at")

    with pytest.raises(grpc.RpcError) as caught:
        api.stub.TerminateRun(run_pb2.TerminateRunRequest(run_id=run.run_id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_terminating_a_run_never_handed_over_cancels_it_at_once(
    start_api: Callable[[str], Api], hello_spec: Spec
) -> None:
    api = start_api(f"127.0.0.1:{free_port()}")
    run = create(api, hello_spec, {"msg": "x"})
    got = api.stub.TerminateRun(run_pb2.TerminateRunRequest(run_id=run.run_id))
    assert got.state == S.CANCELED and got.HasField("finished_at")


def test_terminate_unknown_run_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.TerminateRun(run_pb2.TerminateRunRequest(run_id="ghost"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# -- ListRuns -------------------------------------------------------------------------


def test_list_runs_pages_newest_first(api: Api, hello_spec: Spec) -> None:
    ids = [create(api, hello_spec, {"msg": str(i)}, display_name=f"run {i}").run_id for i in range(5)]
    other = create(api, hello_spec, {"msg": "o"}, namespace="team-b").run_id
    for run_id in ids[:2]:
        report = run_pb2.ReportRunStatusRequest(run_id=run_id, state=S.RUNNING)
        report.task_details.append(task("echo", S.RUNNING))
        api.stub.ReportRunStatus(report)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = api.stub.ListRuns(run_pb2.ListRunsRequest(page_size=2, page_token=token))
        assert page.total_size == 6
        assert len(page.runs) <= 2
        seen.extend(r.run_id for r in page.runs)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [other, *reversed(ids)]

    everything = api.stub.ListRuns(run_pb2.ListRunsRequest())
    tasks = {r.run_id: [t.task_id for t in r.task_details] for r in everything.runs}
    assert tasks[ids[0]] == ["echo"] and tasks[ids[1]] == ["echo"] and tasks[ids[4]] == []
    assert everything.next_page_token == ""
    assert everything.runs[1] == get(api, ids[4])

    team_b = api.stub.ListRuns(run_pb2.ListRunsRequest(namespace="team-b"))
    assert [r.run_id for r in team_b.runs] == [other] and team_b.total_size == 1
    assert team_b.runs[0].namespace == "team-b"


def test_list_runs_refuses_a_bad_page_token(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ListRuns(run_pb2.ListRunsRequest(page_token="not-a-token"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in caught.value.details()


def test_spec_numbers_survive_the_round_trip(api: Api, hello_spec: Spec) -> None:
    hello_spec["root"]["inputDefinitions"]["parameters"]["ratio"]["defaultValue"] = 0.25
    run = create(api, hello_spec, {"msg": "x"})
    assert params_of(run) == {"msg": "x", "times": 3, "ratio": 0.25}
    assert run.runtime_config.parameters["ratio"] == struct_pb2.Value(number_value=0.25)


def test_concurrent_reports_and_terminate_keep_the_run_consistent(api: Api, hello_spec: Spec) -> None:
    from concurrent.futures import ThreadPoolExecutor

    run = create(api, hello_spec, {"msg": "x"})

    def report(i: int) -> None:
        state = S.SUCCEEDED if i == 10 else S.RUNNING
        request = run_pb2.ReportRunStatusRequest(run_id=run.run_id, state=state)
        for n in range(i % 5 + 1):
            request.task_details.append(task(f"t{n}", S.RUNNING))
        api.stub.ReportRunStatus(request, timeout=30)

    def terminate() -> None:
        try:
            api.stub.TerminateRun(run_pb2.TerminateRunRequest(run_id=run.run_id), timeout=30)
        except grpc.RpcError as err:  # the run may already have succeeded
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(report, i) for i in range(20)] + [pool.submit(terminate)]
        for future in futures:
            future.result()

    got = get(api, run.run_id)
    assert got.state == S.SUCCEEDED  # a final state is never left, whatever the order
    ids = [t.task_id for t in got.task_details]
    assert ids == [f"t{n}" for n in range(len(ids))]
    assert api.count_rows("api_run_tasks") == len(ids)


def test_scheduler_address_set_after_start_is_used(
    start_api: Callable[[str], Api], fake_scheduler: Fake, hello_spec: Spec
) -> None:
    api = start_api("")  # the embedded stack learns the scheduler's port only later
    run = create(api, hello_spec, {"msg": "x"})
    assert run.state == S.PENDING and fake_scheduler.started == []
    api.app.settings.scheduler_address = fake_scheduler.address
    wait_for(lambda: fake_scheduler.started_ids() == [run.run_id], what="StartRun at the new address")


# -- CreateRun's one-statement write, and the spec cache ----------------------------------


def _experiment_stub(api: Api) -> Any:
    from stepwell.v1 import experiment_pb2_grpc

    return experiment_pb2_grpc.ExperimentServiceStub(api.channel)


def test_create_run_into_an_experiment_checks_it_in_the_same_statement(api: Api, hello_spec: Spec) -> None:
    from stepwell.v1 import experiment_pb2

    experiments = _experiment_stub(api)
    exp = experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment_pb2.Experiment(display_name="x", namespace="ns1")),
        timeout=10,
    )
    run = create(api, hello_spec, {"msg": "a"}, experiment_id=exp.experiment_id)
    assert run.experiment_id == exp.experiment_id and run.namespace == "ns1"  # the experiment's namespace
    assert get(api, run.run_id).namespace == "ns1"
    before = api.count_rows()
    # Another namespace, an unknown id, an archived experiment: refused, nothing written.
    with pytest.raises(grpc.RpcError) as err:
        create(api, hello_spec, {"msg": "a"}, experiment_id=exp.experiment_id, namespace="ns2")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ns1" in str(err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        create(api, hello_spec, {"msg": "a"}, experiment_id="no-such-experiment")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no-such-experiment" in str(err.value.details())
    experiments.ArchiveExperiment(experiment_pb2.ArchiveExperimentRequest(experiment_id=exp.experiment_id), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        create(api, hello_spec, {"msg": "a"}, experiment_id=exp.experiment_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "archived" in str(err.value.details())
    assert api.count_rows() == before


def test_a_deleted_default_experiment_is_created_again(api: Api, hello_spec: Spec) -> None:
    from stepwell.v1 import experiment_pb2

    first = create(api, hello_spec, {"msg": "a"})
    _experiment_stub(api).DeleteExperiment(
        experiment_pb2.DeleteExperimentRequest(experiment_id=first.experiment_id), timeout=10
    )
    second = create(api, hello_spec, {"msg": "b"})
    assert second.experiment_id and second.experiment_id != first.experiment_id
    assert get(api, second.run_id).experiment_id == second.experiment_id


def test_the_same_spec_is_checked_once_and_parameters_every_time(api: Api, hello_spec: Spec) -> None:
    specs = api.app.service.specs
    hits = specs.hits
    one = create(api, hello_spec, {"msg": "a"})
    two = create(api, hello_spec, {"msg": "b", "times": 7})
    assert specs.hits >= hits + 1  # the second run reused the checked spec
    with pytest.raises(grpc.RpcError) as err:  # a cache hit still checks the parameters
        create(api, hello_spec, {"msg": "c", "nope": 1})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in str(err.value.details())
    with pytest.raises(grpc.RpcError) as err:
        create(api, hello_spec, {"times": 2})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "msg" in str(err.value.details())
    # What CreateRun answers is what GetRun and ListRuns read back.
    for created in (one, two):
        stored = get(api, created.run_id)
        assert json_format.MessageToDict(created.pipeline_spec) == json_format.MessageToDict(stored.pipeline_spec)
        assert params_of(created) == params_of(stored)
        assert (created.display_name, created.experiment_id, created.created_at) == (
            stored.display_name, stored.experiment_id, stored.created_at)
    assert params_of(get(api, two.run_id)) == {"msg": "b", "times": 7}
    listed = api.stub.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs
    assert {r.run_id for r in listed} >= {one.run_id, two.run_id}
    assert all(json_format.MessageToDict(r.pipeline_spec) == hello_spec for r in listed)


def test_a_wrong_spec_is_refused_every_time(api: Api, hello_spec: Spec) -> None:
    bad = dict(hello_spec, schemaVersion="2.0.0")
    for _ in range(2):  # a refused spec is not remembered as checked
        with pytest.raises(grpc.RpcError) as err:
            create(api, bad, {"msg": "a"})
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "schemaVersion" in str(err.value.details())
    assert api.count_rows() == 0


def test_a_platform_spec_survives_create_get_and_list(api: Api, hello_spec: Spec) -> None:
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-hello": {"nodeSelector": {"labels": {"a": "b"}}}}}}}}
    wrapped = {"pipeline_spec": hello_spec, "platform_spec": platform}
    run = create(api, wrapped, {"msg": "a"})
    assert json_format.MessageToDict(run.pipeline_spec) == wrapped
    assert json_format.MessageToDict(get(api, run.run_id).pipeline_spec) == wrapped
    listed = api.stub.ListRuns(run_pb2.ListRunsRequest(), timeout=10).runs
    assert [json_format.MessageToDict(r.pipeline_spec) for r in listed] == [wrapped]
