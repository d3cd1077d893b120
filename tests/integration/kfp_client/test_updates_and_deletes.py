"""UpdatePipeline / UpdatePipelineVersion, DeleteRun with its artifacts, a recurring
run's propagation_policy, and runs from zip / tar.gz packages: over REST and over
``stepwell.Client``, against the running stack (real SQLite, real artifact folder)."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwell.cli.embedded import EmbeddedStack
from stepwell.client import Client
from stepwell.errors import FailedPrecondition, InvalidArgument, NotFound


@pytest.fixture
def sw(stack: EmbeddedStack) -> Iterator[Client]:
    with Client(stack.api_address) as client:
        yield client


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


# -- UpdatePipeline / UpdatePipelineVersion ----------------------------------------------


def test_update_pipeline_and_version_over_rest(sw: Client, packages: dict[str, Path], base_url: str) -> None:
    pipeline = sw.upload_pipeline(packages["adder"], pipeline_name="upd-adder")
    version = sw.list_pipeline_versions(pipeline.pipeline_id).items[0]
    url = f"{base_url}/pipelines/{pipeline.pipeline_id}"
    reply = httpx.patch(url, json={"display_name": "Adder", "tags": {"team": "ml"}}, timeout=10)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["display_name"] == "Adder" and body["tags"] == {"team": "ml"} and body["name"] == "upd-adder"
    # A read-modify-write of the whole object works; renaming does not.
    whole = httpx.get(url, timeout=10).json()
    assert httpx.patch(url, json={**whole, "description": "adds"}, timeout=10).status_code == 200
    assert sw.get_pipeline(pipeline.pipeline_id).description == "adds"
    refused = httpx.patch(url, json={"name": "other"}, timeout=10)
    assert refused.status_code == 400 and "name" in refused.json()["message"]
    assert httpx.patch(url, json={"display_name": "  "}, params={"update_mask": "display_name"}, timeout=10).status_code == 400
    assert httpx.patch(f"{base_url}/pipelines/nope", json={"display_name": "x"}, timeout=10).status_code == 404

    vurl = f"{url}/versions/{version.pipeline_version_id}"
    reply = httpx.patch(vurl, json={"description": "first", "tags": {"stage": "dev"}}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["description"] == "first" and reply.json()["tags"] == {"stage": "dev"}
    spec = reply.json()["pipeline_spec"]
    refused = httpx.patch(vurl, json={"pipeline_spec": spec}, timeout=10)
    assert refused.status_code == 400 and "pipeline_spec" in refused.json()["message"]
    assert httpx.patch(f"{base_url}/pipelines/{pipeline.pipeline_id}/versions/nope", json={"description": "x"},
                       timeout=10).status_code == 404
    assert sw.get_pipeline(pipeline.pipeline_id).tags == {"team": "ml"}  # unchanged by the version's update
    sw.delete_pipeline(pipeline.pipeline_id, cascade=True)


def test_update_pipeline_and_version_over_grpc(sw: Client, packages: dict[str, Path]) -> None:
    pipeline = sw.upload_pipeline(packages["adder"], pipeline_name="upd-grpc")
    version = sw.list_pipeline_versions(pipeline.pipeline_id).items[0]
    updated = sw.update_pipeline(pipeline.pipeline_id, tags={"a": "1"})
    assert updated.tags == {"a": "1"} and updated.display_name == pipeline.display_name
    assert sw.update_pipeline(pipeline.pipeline_id, tags={}).tags == {}  # the mask names tags: cleared
    assert sw.update_pipeline(pipeline.pipeline_id, display_name="G").display_name == "G"
    with pytest.raises(InvalidArgument, match="tags"):
        sw.update_pipeline(pipeline.pipeline_id, tags={"bad.key": "x"})
    changed = sw.update_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id, display_name="v one")
    assert changed.display_name == "v one" and changed.name == version.name
    with pytest.raises(NotFound):
        sw.update_pipeline_version("other-pipeline", version.pipeline_version_id, display_name="x")
    sw.delete_pipeline(pipeline.pipeline_id, cascade=True)


# -- DeleteRun with its artifacts -------------------------------------------------------


def _run_folder(stack: EmbeddedStack, run_id: str) -> Path:
    return Path(stack.home) / "artifacts" / "adder" / run_id


def test_delete_run_with_its_artifacts(
    sw: Client, stack: EmbeddedStack, packages: dict[str, Path], base_url: str
) -> None:
    args = {"a": 40, "b": 2}
    first = sw.wait_for_run_completion(sw.create_run_from_pipeline_package(packages["adder"], args).run_id, timeout=60)
    assert first.state == "SUCCEEDED"
    folder = _run_folder(stack, first.run_id)
    assert any(folder.rglob("*")), "the run stored nothing?"
    cached = sw.wait_for_run_completion(sw.create_run_from_pipeline_package(packages["adder"], args).run_id, timeout=60)
    assert all(not t.log_uri for t in cached.tasks)  # cache hits: outputs live in the first run's folder

    # The cache hit's deletion leaves the outputs it reused (they are the first run's).
    sw.delete_run(cached.run_id, delete_artifacts=True)
    with pytest.raises(NotFound):
        sw.get_run(cached.run_id)
    assert any(folder.rglob("*"))

    # Over REST, as a query parameter of KFP's DELETE route.
    reply = httpx.delete(f"{base_url}/runs/{first.run_id}", params={"delete_artifacts": "true"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert not folder.exists()
    with pytest.raises(NotFound):
        sw.get_run(first.run_id)
    # Its cache entries went too: the same arguments run the tasks again.
    again = sw.wait_for_run_completion(sw.create_run_from_pipeline_package(packages["adder"], args).run_id, timeout=60)
    assert again.state == "SUCCEEDED" and all(t.log_uri for t in again.tasks)
    sw.delete_run(again.run_id)  # without the option the artifacts stay
    assert any(_run_folder(stack, again.run_id).rglob("*"))


def test_delete_artifacts_of_an_active_run_is_refused(sw: Client, packages: dict[str, Path]) -> None:
    run = sw.create_run_from_pipeline_package(packages["sleepy"], {"seconds": 30.0})
    with pytest.raises(FailedPrecondition, match="terminate"):
        sw.delete_run(run.run_id, delete_artifacts=True)
    assert sw.get_run(run.run_id).run_id == run.run_id  # nothing was deleted
    wait_for(lambda: sw.get_run(run.run_id).state == "RUNNING", what="the run to start")
    sw.terminate_run(run.run_id)
    wait_for(lambda: sw.get_run(run.run_id).done, what=f"the run to end: {sw.get_run(run.run_id)}")
    sw.delete_run(run.run_id, delete_artifacts=True)


# -- DeleteRecurringRun's propagation_policy ----------------------------------------------


def _recurring_with_a_running_run(sw: Client, packages: dict[str, Path], name: str) -> tuple[str, str]:
    experiment = sw.create_experiment(name)
    recurring = sw.create_recurring_run(experiment.experiment_id, name, interval_second=1, max_concurrency=1,
                                        params={"seconds": 60.0}, pipeline_package_path=packages["sleepy"])

    def running() -> str:
        runs = sw.list_runs(experiment_id=experiment.experiment_id).runs
        return next((r.run_id for r in runs if r.state == "RUNNING"), "")

    return recurring.recurring_run_id, wait_for(running, what=f"{name}'s first run to start")


@pytest.mark.parametrize("policy", ["ORPHAN", "BACKGROUND", "FOREGROUND"])
def test_delete_recurring_run_propagation_policy(
    sw: Client, packages: dict[str, Path], base_url: str, policy: str
) -> None:
    recurring_id, run_id = _recurring_with_a_running_run(sw, packages, f"propagate-{policy.lower()}")
    if policy == "BACKGROUND":  # over REST, KFP's query parameter
        reply = httpx.delete(f"{base_url}/recurringruns/{recurring_id}", params={"propagation_policy": policy}, timeout=30)
        assert reply.status_code == 200, reply.text
    else:
        sw.delete_recurring_run(recurring_id, propagation_policy=policy)
    with pytest.raises(NotFound):
        sw.get_recurring_run(recurring_id)
    if policy == "ORPHAN":
        time.sleep(0.5)
        assert sw.get_run(run_id).state == "RUNNING"  # the run stays and keeps running
        sw.terminate_run(run_id)
    elif policy == "FOREGROUND":
        assert sw.get_run(run_id).state in ("CANCELING", "CANCELED")  # stopped before the call returned
    final = wait_for(lambda: (r := sw.get_run(run_id)).done and r, what="the run to end")
    assert final.state == "CANCELED"


def test_a_bad_propagation_policy_is_refused(sw: Client, base_url: str) -> None:
    reply = httpx.delete(f"{base_url}/recurringruns/anything", params={"propagation_policy": "SIDEWAYS"}, timeout=10)
    assert reply.status_code == 400 and "propagation_policy" in reply.json()["message"]
    with pytest.raises(InvalidArgument, match="SIDEWAYS"):
        sw.delete_recurring_run("anything", propagation_policy="SIDEWAYS")


# -- create_run_from_pipeline_package with archives ------------------------------------------


def test_runs_from_zip_and_tar_gz_packages(sw: Client, packages: dict[str, Path], tmp_path: Path) -> None:
    text = packages["adder"].read_bytes()
    zipped = tmp_path / "adder.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("pipeline.yaml", text)
    tarred = tmp_path / "adder.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        info = tarfile.TarInfo("adder.yaml")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    for package in (zipped, tarred):
        run = sw.create_run_from_pipeline_package(package, {"a": 3, "b": 4}, run_name=package.name)
        assert run.pipeline_name == "adder" and run.parameters == {"a": 3, "b": 4}
        assert sw.wait_for_run_completion(run.run_id, timeout=60).outputs.parameters["Output"] == 10
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("README.md", "no pipeline here")
    with pytest.raises(InvalidArgument, match="archive"):
        sw.create_run_from_pipeline_package(empty)
