"""Acceptance: the three services as separate OS processes on Postgres + S3.

A pipeline submitted through ``stepwell.Client`` runs to SUCCEEDED; every artifact
object exists in the bucket with the recorded sha256; the metadata service returns the
run's executions and the events linking each artifact to its producer and consumers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from stepwell.cli.loading import find_pipeline
from stepwell.client import Client
from stepwell.v1 import metadata_pb2, metadata_pb2_grpc
from tests.conftest import S3Server
from tests.processes import ServiceProcess, free_port, start_service

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def three_services(tmp_path: Path, fresh_pg_url: str, s3_server: S3Server, s3_bucket: str) -> Iterator[dict[str, ServiceProcess]]:
    api_port, scheduler_port = free_port(), free_port()
    env = {
        "STEPWELL_HOME": str(tmp_path / "home"),
        "STEPWELL_DATABASE_URL": fresh_pg_url,
        "STEPWELL_ARTIFACT_ROOT": f"s3://{s3_bucket}/pipelines",
        "STEPWELL_S3_ENDPOINT": s3_server.endpoint,
        "STEPWELL_S3_ACCESS_KEY": s3_server.access_key,
        "STEPWELL_S3_SECRET_KEY": s3_server.secret_key,
        "STEPWELL_API_ADDRESS": f"127.0.0.1:{api_port}",
        "STEPWELL_SCHEDULER_ADDRESS": f"127.0.0.1:{scheduler_port}",
    }
    started: dict[str, ServiceProcess] = {}
    try:
        started["metadata"] = start_service("metadata", ["--port", "0"], env)
        env["STEPWELL_METADATA_ADDRESS"] = started["metadata"].address
        started["scheduler"] = start_service("scheduler", ["--port", str(scheduler_port)], env)
        started["api"] = start_service("api", ["--port", str(api_port), "--http-port", "0"], env)
        yield started
    finally:
        for service in reversed(list(started.values())):
            service.stop()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_pipeline_runs_across_three_processes(three_services: dict[str, ServiceProcess], s3_server: S3Server, s3_bucket: str) -> None:
    # Three distinct OS processes.
    pids = {s.proc.pid for s in three_services.values()}
    assert len(pids) == 3

    pipeline = find_pipeline(str(ROOT / "examples" / "quickstart.py"))
    with Client(three_services["api"].address) as client:
        created = client.create_run_from_pipeline_func(pipeline, arguments={"rows": 5, "threshold": 1.0})
        run = client.wait_for_run_completion(created.run_id, timeout=120)

    assert run.state == "SUCCEEDED", (run.error, [(t.task_id, t.state, t.error, t.log_tail) for t in run.tasks])
    # ys = 0,1,4,9,16 -> mean 6
    assert run.outputs.parameters["Output"] == "mean of 5 rows is 6.00, above 1.0"
    tasks = {t.task_id: t for t in run.tasks}
    assert set(tasks) == {"make-data", "summarize", "report"}
    assert tasks["make-data"].outputs.parameters["Output"] == 5
    assert tasks["summarize"].outputs.parameters["Output"] == 6.0

    # Every artifact object is in the bucket with the sha256 that was recorded.
    minio = s3_server.client()
    artifacts = [a for t in run.tasks for refs in t.outputs.artifacts.values() for a in refs]
    assert {a.schema_title for a in artifacts} >= {"system.Dataset", "system.Metrics"}
    dataset = tasks["make-data"].outputs.artifacts["data"][0]
    assert dataset.uri.startswith(f"s3://{s3_bucket}/pipelines/")
    assert dataset.metadata["rows"] == 5
    assert tasks["summarize"].outputs.artifacts["metrics"][0].metadata["mean_y"] == 6.0
    for artifact in artifacts:
        if artifact.size_bytes == 0 and artifact.schema_title == "system.Metrics":
            continue  # metrics live in metadata; KFP writes no file for them
        bucket, _, key = artifact.uri.removeprefix("s3://").partition("/")
        body = minio.get_object(bucket, key).read()
        assert _sha256(body) == artifact.sha256
        assert len(body) == artifact.size_bytes
    body = minio.get_object(s3_bucket, dataset.uri.removeprefix(f"s3://{s3_bucket}/")).read()
    assert body.decode().splitlines()[:2] == ["x,y", "0,0"]

    # Lineage in the metadata service.
    with grpc.insecure_channel(three_services["metadata"].address) as channel:
        md = metadata_pb2_grpc.MetadataStub(channel)
        context = md.GetContext(metadata_pb2.GetContextRequest(type="system.PipelineRun", name=run.run_id))
        executions = md.GetExecutions(metadata_pb2.GetExecutionsRequest(context_id=context.id)).executions
        by_id = {e.id: e for e in executions}
        container = {e.name: e for e in executions if e.type == "system.ContainerExecution"}
        assert set(container) == {"make-data", "summarize", "report"}
        assert all(e.state == metadata_pb2.Execution.COMPLETE for e in container.values())
        assert tasks["make-data"].execution_id == container["make-data"].id

        events = md.GetEvents(metadata_pb2.GetEventsRequest(execution_ids=list(by_id))).events
        dataset_events = [e for e in events if e.artifact_id == dataset.artifact_id]
        producers = {by_id[e.execution_id].name for e in dataset_events if e.type == metadata_pb2.Event.OUTPUT}
        consumers = {by_id[e.execution_id].name for e in dataset_events if e.type == metadata_pb2.Event.INPUT}
        assert producers == {"make-data"}
        assert consumers == {"summarize"}
        lineage = md.GetArtifactLineage(metadata_pb2.GetArtifactLineageRequest(artifact_id=dataset.artifact_id))
        assert lineage.producer.name == "make-data"
        assert [c.name for c in lineage.consumers] == ["summarize"]
        recorded = md.GetArtifacts(metadata_pb2.GetArtifactsRequest(ids=[dataset.artifact_id])).artifacts[0]
        assert recorded.sha256 == dataset.sha256 and recorded.uri == dataset.uri
