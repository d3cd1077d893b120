"""``stepwell.Client`` (gRPC) and the ``stepwell pipeline|experiment|runs|recurring``
commands against the same running Stepwell the kfp.Client tests use."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepwell.cli import cli
from stepwell.cli.embedded import EmbeddedStack
from stepwell.client import Client
from stepwell.errors import AlreadyExists, FailedPrecondition, InvalidArgument


@pytest.fixture
def sw(stack: EmbeddedStack) -> Iterator[Client]:
    with Client(stack.api_address) as client:
        yield client


def test_client_mirrors_kfp_names_over_grpc(sw: Client, packages: dict[str, Path]) -> None:
    pipeline = sw.upload_pipeline(packages["adder"], pipeline_name="sw-adder")
    with pytest.raises(AlreadyExists):
        sw.upload_pipeline(packages["adder"], pipeline_name="sw-adder")
    version = sw.upload_pipeline_version(packages["adder"], "sw-v2", pipeline_name="sw-adder")
    assert sw.get_pipeline_id("sw-adder") == pipeline.pipeline_id
    assert [v.name for v in sw.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at").items] == ["sw-adder", "sw-v2"]

    experiment = sw.create_experiment("sw-exp")
    assert sw.create_experiment("sw-exp").experiment_id == experiment.experiment_id
    run = sw.run_pipeline(experiment.experiment_id, "sw run", pipeline_id=pipeline.pipeline_id,
                          version_id=version.pipeline_version_id, params={"a": 2})
    done = sw.wait_for_run_completion(run.run_id, timeout=60)
    assert done.state == "SUCCEEDED" and done.pipeline_version_id == version.pipeline_version_id
    assert done.outputs.parameters["Output"] == 6  # a + (a + b) with b defaulting to 2

    latest = sw.create_run(None, {"a": 1}, "latest version", pipeline_id=pipeline.pipeline_id)
    assert latest.pipeline_version_id == version.pipeline_version_id  # the newest version

    listed = sw.list_runs(experiment_id=experiment.experiment_id, filter=json.dumps(
        {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "sw run"}]}))
    assert [r.run_id for r in listed.runs] == [run.run_id]
    with pytest.raises(InvalidArgument, match="colour"):
        sw.list_runs(sort_by="colour")
    with pytest.raises(FailedPrecondition):
        sw.retry_run(run.run_id)  # it SUCCEEDED
    sw.archive_run(run.run_id)
    assert sw.get_run(run.run_id).storage_state == "ARCHIVED"
    sw.delete_run(run.run_id)
    sw.delete_pipeline(pipeline.pipeline_id, cascade=True)


def test_client_recurring_run_update_in_place(sw: Client, packages: dict[str, Path]) -> None:
    experiment = sw.create_experiment("sw-recurring")
    recurring = sw.create_recurring_run(experiment.experiment_id, "hourly", cron_expression="0 0 * * * *",
                                        pipeline_package_path=packages["adder"], params={"a": 1})
    assert recurring.status == "ENABLED" and recurring.next_fire_at is not None
    changed = sw.update_recurring_run(recurring.recurring_run_id, interval_second=1, max_concurrency=1)
    assert changed.cron == "" and changed.interval_second == 1 and changed.parameters == {"a": 1}

    def fired() -> int:
        return sw.list_runs(experiment_id=experiment.experiment_id).total_size

    deadline = time.monotonic() + 15
    while fired() == 0:
        assert time.monotonic() < deadline, "the updated recurring run did not fire"
        time.sleep(0.1)
    sw.disable_recurring_run(recurring.recurring_run_id)
    assert sw.get_recurring_run(recurring.recurring_run_id).next_fire_at is None
    sw.delete_recurring_run(recurring.recurring_run_id)


def test_cli_resource_commands(stack: EmbeddedStack, packages: dict[str, Path]) -> None:
    runner = CliRunner()

    def sw(*args: str) -> str:
        result = runner.invoke(cli, [*args, "--server", stack.api_address], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    uploaded = json.loads(sw("pipeline", "upload", str(packages["adder"]), "--name", "cli-adder", "--json"))
    assert uploaded["name"] == "cli-adder"
    assert "cli-adder" in sw("pipeline", "list")
    assert json.loads(sw("pipeline", "versions", uploaded["pipeline_id"], "--json"))[0]["name"] == "cli-adder"
    experiment = json.loads(sw("experiment", "create", "cli-exp", "--json"))
    run = json.loads(sw("runs", "create", "--pipeline-id", uploaded["pipeline_id"], "-p", "a=3",
                        "--experiment", "cli-exp", "--wait", "--json"))
    assert run["state"] == "SUCCEEDED" and run["experiment_id"] == experiment["experiment_id"]
    table = sw("runs", "list", "--experiment-id", experiment["experiment_id"], "--state", "succeeded")
    assert run["run_id"] in table and "SUCCEEDED" in table
    assert "add-2" in sw("runs", "get", run["run_id"])
    sw("runs", "archive", run["run_id"])
    recurring = json.loads(sw("recurring", "create", str(packages["adder"]), "--name", "cli-rec", "--cron",
                              "0 0 9 ? * 2-6", "--experiment", "cli-exp", "--disabled", "--json"))
    assert recurring["status"] == "DISABLED"
    assert "cli-rec" in sw("recurring", "list")
    sw("recurring", "enable", recurring["recurring_run_id"])
    updated = json.loads(sw("recurring", "update", recurring["recurring_run_id"], "--max-concurrency", "4", "--json"))
    assert updated["max_concurrency"] == 4 and updated["status"] == "ENABLED"
    sw("recurring", "delete", recurring["recurring_run_id"])
    sw("experiment", "delete", experiment["experiment_id"])
    sw("pipeline", "delete", uploaded["pipeline_id"], "--cascade")

    bad = runner.invoke(cli, ["runs", "get", "nope", "--server", stack.api_address])
    assert bad.exit_code == 2 and "not found" in bad.output
