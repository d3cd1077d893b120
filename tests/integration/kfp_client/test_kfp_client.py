"""The real ``kfp.Client`` 2.17.3 against a running Stepwell, over KFP's REST surface."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import kfp
import pytest
from kfp_server_api.exceptions import ApiException

from stepwell.cli.embedded import EmbeddedStack

FAST = 0.1  # kfp's wait_for_run_completion polls every 5 s unless told otherwise


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def eq(key: str, value: str) -> str:
    """KFP's filter JSON as kfp.Client sends it (int operation, camelCase value)."""
    return json.dumps({"predicates": [{"operation": 1, "key": key, "stringValue": value}]})


def test_health_check(client: kfp.Client, base_url: str) -> None:
    assert client.get_kfp_healthz().multi_user is False
    body = httpx.get(f"{base_url}/healthz", timeout=5).json()
    assert body["pipeline_store"] == "database"


def test_upload_pipeline_and_version_then_list_and_get(client: kfp.Client, packages: dict[str, Path]) -> None:
    pipeline = client.upload_pipeline(str(packages["adder"]), pipeline_name="adder-upload", description="adds")
    assert pipeline.pipeline_id and pipeline.display_name == "adder-upload"
    version = client.upload_pipeline_version(str(packages["adder"]), "v2", pipeline_name="adder-upload")
    assert version.pipeline_id == pipeline.pipeline_id

    got = client.get_pipeline(pipeline.pipeline_id)
    assert got.description == "adds" and got.created_at is not None
    assert client.get_pipeline_id("adder-upload") == pipeline.pipeline_id
    versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at")
    assert [v.display_name for v in versions.pipeline_versions] == ["adder-upload", "v2"]
    assert versions.total_size == 2
    spec = client.get_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id).pipeline_spec
    assert spec["pipelineInfo"]["name"] == "adder"
    listed = client.list_pipelines(filter=eq("display_name", "adder-upload"))
    assert [p.pipeline_id for p in listed.pipelines] == [pipeline.pipeline_id]

    with pytest.raises(ApiException) as dup:
        client.upload_pipeline(str(packages["adder"]), pipeline_name="adder-upload")
    assert dup.value.status == 409
    # KFP refuses to delete a pipeline that has versions; the versions go first.
    with pytest.raises(ApiException) as refused:
        client.delete_pipeline(pipeline.pipeline_id)
    assert refused.value.status == 400 and "cascade" in json.loads(refused.value.body)["message"]
    for v in versions.pipeline_versions:
        client.delete_pipeline_version(pipeline.pipeline_id, v.pipeline_version_id)
    client.delete_pipeline(pipeline.pipeline_id)
    with pytest.raises(ApiException) as gone:
        client.get_pipeline(pipeline.pipeline_id)
    assert gone.value.status == 404


def test_default_experiment_is_get_or_create(client: kfp.Client) -> None:
    first = client.create_experiment("Default")
    second = client.create_experiment("Default")
    assert first.experiment_id == second.experiment_id
    assert client.get_experiment(experiment_name="Default").experiment_id == first.experiment_id


def test_runs_from_a_package_and_from_a_pipeline_version(client: kfp.Client, packages: dict[str, Path]) -> None:
    result = client.create_run_from_pipeline_package(str(packages["adder"]), arguments={"a": 5}, run_name="pkg")
    run = client.wait_for_run_completion(result.run_id, timeout=60, sleep_duration=FAST)
    assert run.state == "SUCCEEDED"
    assert run.runtime_config.parameters == {"a": 5, "b": 2}
    tasks = {t.display_name: t for t in run.run_details.task_details}
    assert set(tasks) == {"add", "add-2"} and {t.state for t in tasks.values()} == {"SUCCEEDED"}
    assert all(t.start_time and t.end_time and t.run_id == run.run_id for t in tasks.values())
    assert run.experiment_id == client.get_experiment(experiment_name="Default").experiment_id

    pipeline = client.upload_pipeline(str(packages["adder"]), pipeline_name="adder-for-runs")
    version_id = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0].pipeline_version_id
    experiment = client.create_experiment("from-versions")
    created = client.run_pipeline(
        experiment_id=experiment.experiment_id,
        job_name="from a version",
        pipeline_id=pipeline.pipeline_id,
        version_id=version_id,
        params={"a": 10, "b": 20},
    )
    run = client.wait_for_run_completion(created.run_id, timeout=60, sleep_duration=FAST)
    assert run.state == "SUCCEEDED"
    assert run.pipeline_version_reference.pipeline_version_id == version_id
    assert run.experiment_id == experiment.experiment_id
    assert client.get_experiment(experiment.experiment_id).last_run_created_at is not None


def test_list_runs_with_a_filter_and_sort(client: kfp.Client, packages: dict[str, Path]) -> None:
    experiment = client.create_experiment("listing")
    ids = []
    for name in ("c-run", "a-run", "b-run"):
        ids.append(client.create_run_from_pipeline_package(
            str(packages["adder"]), run_name=name, experiment_id=experiment.experiment_id).run_id)
    for run_id in ids:
        client.wait_for_run_completion(run_id, timeout=60, sleep_duration=FAST)
    page = client.list_runs(experiment_id=experiment.experiment_id, sort_by="display_name desc", page_size=2)
    assert [r.display_name for r in page.runs] == ["c-run", "b-run"] and page.total_size == 3
    rest = client.list_runs(experiment_id=experiment.experiment_id, sort_by="display_name desc",
                            page_size=2, page_token=page.next_page_token)
    assert [r.display_name for r in rest.runs] == ["a-run"] and not rest.next_page_token
    filtered = client.list_runs(filter=eq("display_name", "b-run"))
    assert [r.run_id for r in filtered.runs] == [ids[2]]
    succeeded = client.list_runs(experiment_id=experiment.experiment_id, filter=eq("state", "SUCCEEDED"))
    assert succeeded.total_size == 3
    substring = json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name", "string_value": "-ru"}]})
    assert client.list_runs(experiment_id=experiment.experiment_id, filter=substring).total_size == 3


def test_terminate_a_run(client: kfp.Client, packages: dict[str, Path]) -> None:
    run_id = client.create_run_from_pipeline_package(str(packages["sleepy"]), run_name="long nap").run_id
    wait_for(lambda: client.get_run(run_id).state == "RUNNING", what="the run to start")
    client.terminate_run(run_id)
    # kfp's wait_for_run_completion does not stop on CANCELED, so poll get_run.
    wait_for(lambda: client.get_run(run_id).state == "CANCELED", what="the run to be canceled")


def test_retry_a_failed_run(client: kfp.Client, packages: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = client.create_run_from_pipeline_package(
        str(packages["flaky"]), arguments={"marker": str(marker)}, run_name="flaky").run_id
    assert client.wait_for_run_completion(run_id, timeout=60, sleep_duration=FAST).state == "FAILED"
    assert client.get_run(run_id).error.message
    client.runs.run_service_retry_run(run_id)
    run = client.wait_for_run_completion(run_id, timeout=60, sleep_duration=FAST)
    assert run.state == "SUCCEEDED"
    assert run.finished_at is not None


def test_archive_and_delete(client: kfp.Client, packages: dict[str, Path]) -> None:
    experiment = client.create_experiment("to-archive")
    run_id = client.create_run_from_pipeline_package(
        str(packages["adder"]), run_name="archived", experiment_id=experiment.experiment_id).run_id
    client.wait_for_run_completion(run_id, timeout=60, sleep_duration=FAST)
    client.archive_run(run_id)
    assert client.get_run(run_id).storage_state == "ARCHIVED"
    client.unarchive_run(run_id)
    assert client.get_run(run_id).storage_state == "AVAILABLE"

    client.archive_experiment(experiment.experiment_id)
    assert client.get_experiment(experiment.experiment_id).storage_state == "ARCHIVED"
    assert client.get_run(run_id).storage_state == "ARCHIVED"
    with pytest.raises(ApiException) as refused:  # no new runs in an archived experiment
        client.create_run_from_pipeline_package(
            str(packages["adder"]), run_name="late", experiment_id=experiment.experiment_id)
    assert refused.value.status == 400
    client.unarchive_experiment(experiment.experiment_id)
    assert client.get_experiment(experiment.experiment_id).storage_state == "AVAILABLE"

    client.delete_run(run_id)
    with pytest.raises(ApiException) as gone:
        client.get_run(run_id)
    assert gone.value.status == 404
    client.delete_experiment(experiment.experiment_id)
    assert client.list_experiments(filter=eq("display_name", "to-archive")).experiments is None


def test_recurring_run_fires_and_can_be_disabled_enabled_and_deleted(
    client: kfp.Client, packages: dict[str, Path]
) -> None:
    experiment = client.create_experiment("recurring")
    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name="every second",
        interval_second=1,
        max_concurrency=2,
        pipeline_package_path=str(packages["adder"]),
        params={"a": 7},
    )
    assert recurring.status == "ENABLED"
    assert recurring.trigger.periodic_schedule.interval_second == "1"

    def fired() -> list[Any]:
        runs = client.list_runs(experiment_id=experiment.experiment_id, filter=eq("recurring_run_id", recurring.recurring_run_id))
        return runs.runs or []

    first = wait_for(fired, timeout=15, what="the recurring run to fire")
    done = client.wait_for_run_completion(first[0].run_id, timeout=60, sleep_duration=FAST)
    assert done.state == "SUCCEEDED" and done.runtime_config.parameters["a"] == 7

    client.disable_recurring_run(recurring.recurring_run_id)
    assert client.get_recurring_run(recurring.recurring_run_id).status == "DISABLED"
    time.sleep(0.5)  # a pass already under way may still fire once
    count = len(fired())
    time.sleep(1.5)
    assert len(fired()) == count

    client.enable_recurring_run(recurring.recurring_run_id)
    assert client.get_recurring_run(recurring.recurring_run_id).status == "ENABLED"
    wait_for(lambda: len(fired()) > count, timeout=15, what="the re-enabled recurring run to fire")
    listed = client.list_recurring_runs(experiment_id=experiment.experiment_id)
    assert [r.recurring_run_id for r in listed.recurring_runs] == [recurring.recurring_run_id]

    client.delete_recurring_run(recurring.recurring_run_id)
    with pytest.raises(ApiException) as gone:
        client.get_recurring_run(recurring.recurring_run_id)
    assert gone.value.status == 404


def test_cron_recurring_run_and_update_in_place(client: kfp.Client, packages: dict[str, Path], base_url: str) -> None:
    recurring = client.create_recurring_run(
        experiment_id=client.create_experiment("cron").experiment_id,
        job_name="weekdays at nine",
        cron_expression="0 0 9 ? * 2-6",
        pipeline_package_path=str(packages["adder"]),
        enabled=False,
    )
    assert recurring.status == "DISABLED"
    assert recurring.trigger.cron_schedule.cron == "0 0 9 ? * 2-6"
    # Stepwell's UpdateRecurringRun (PATCH), which KFP lacks: change the trigger in place.
    reply = httpx.patch(
        f"{base_url}/recurringruns/{recurring.recurring_run_id}",
        json={"trigger": {"periodic_schedule": {"interval_second": "3600"}}, "max_concurrency": 3, "mode": "ENABLE"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["trigger"] == {"periodic_schedule": {"interval_second": "3600"}}
    assert body["max_concurrency"] == "3" and body["status"] == "ENABLED" and body["next_fire_at"]
    client.delete_recurring_run(recurring.recurring_run_id)


def test_run_with_the_embedded_stack_sees_it_over_grpc_too(stack: EmbeddedStack, client: kfp.Client) -> None:
    from stepwell.client import Client

    with Client(stack.api_address) as grpc_client:
        pipelines = grpc_client.list_pipelines()
    rest = client.list_pipelines()
    assert {p.pipeline_id for p in pipelines.pipelines} == {p.pipeline_id for p in rest.pipelines or []}


def test_a_run_served_from_the_cache_shows_its_tasks_skipped(client: kfp.Client, packages: dict[str, Path]) -> None:
    """As in KFP (kfp-facts §4.6): the run SUCCEEDED, each task served from the cache SKIPPED."""
    first = client.create_run_from_pipeline_package(str(packages["adder"]), arguments={"a": 41, "b": 1}, run_name="c1")
    run = client.wait_for_run_completion(first.run_id, timeout=60, sleep_duration=FAST)
    assert run.state == "SUCCEEDED"
    assert {t.display_name: t.state for t in run.run_details.task_details} == {"add": "SUCCEEDED", "add-2": "SUCCEEDED"}
    second = client.create_run_from_pipeline_package(str(packages["adder"]), arguments={"a": 41, "b": 1}, run_name="c2")
    run = client.wait_for_run_completion(second.run_id, timeout=60, sleep_duration=FAST)
    assert run.state == "SUCCEEDED"
    assert {t.display_name: t.state for t in run.run_details.task_details} == {"add": "SKIPPED", "add-2": "SKIPPED"}
