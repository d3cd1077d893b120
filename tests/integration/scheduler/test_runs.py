"""End-to-end runs through the scheduler: real task processes, real databases, real stores."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

from google.protobuf import json_format

from stepwell.storage import LocalStore, S3Config, S3Store, directory_digest, is_s3_uri
from stepwell.v1 import common_pb2, metadata_pb2, run_pb2, scheduler_pb2
from tests.integration.scheduler.pipelines import (
    failing_pipeline,
    parallel_pipeline,
    three_task_pipeline,
)
from tests.integration.scheduler.stack import Stack


def _store(stack: Stack, uri: str):  # type: ignore[no-untyped-def]
    if is_s3_uri(uri):
        s3 = stack.s3
        return S3Store(S3Config(s3.endpoint, s3.access_key, s3.secret_key, s3.region))
    return LocalStore()


def _tasks(status: scheduler_pb2.RunStatus) -> dict[str, run_pb2.TaskDetail]:
    return {t.task_id: t for t in status.task_details}


def test_three_task_pipeline_passes_parameters_and_artifacts(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    assert stack.start(run_id, three_task_pipeline(), {"n": 5}) is False
    assert stack.start(run_id, three_task_pipeline(), {"n": 5}) is True  # idempotent
    status = stack.wait(run_id)
    tasks = _tasks(status)
    assert status.state == common_pb2.SUCCEEDED, (status.error, [(t.task_id, t.error, t.log_tail) for t in status.task_details])
    assert set(tasks) == {"produce", "consume", "wrap", "wrap/summarize"}
    assert json_format.MessageToDict(status.outputs.parameters) == {"summary": "tag-5:10"}

    produce, consume, wrap, summarize = (tasks[k] for k in ("produce", "consume", "wrap", "wrap/summarize"))
    assert json_format.MessageToDict(produce.outputs.parameters) == {"count": 5}
    assert json_format.MessageToDict(consume.outputs.parameters) == {"total": 10}
    assert wrap.kind == "dag" and summarize.parent_task_id == "wrap" and summarize.kind == "container"
    for t in (produce, consume, summarize):
        assert t.state == common_pb2.SUCCEEDED
        assert t.execution_id > 0
        assert t.create_time.ToNanoseconds() <= t.start_time.ToNanoseconds() <= t.end_time.ToNanoseconds()
        assert t.log_uri and _store(stack, t.log_uri).exists(t.log_uri)
    assert consume.start_time.ToNanoseconds() >= produce.end_time.ToNanoseconds()

    # Artifacts exist where recorded, with the recorded digest.
    data = produce.outputs.artifacts["data"].artifacts[0]
    assert data.uri.startswith(stack.artifact_root + "/three-steps/" + run_id + "/produce/a1/")
    store = _store(stack, data.uri)
    payload = b"".join(f"{i}\n".encode() for i in range(5))
    assert data.size_bytes == len(payload)
    assert data.sha256 == hashlib.sha256(payload).hexdigest()
    assert data.schema_title == "system.Dataset" and data.artifact_id > 0
    report = consume.outputs.artifacts["report"].artifacts[0]
    assert json_format.MessageToDict(report.metadata)["rows"] == 5
    assert store.stat(report.uri).is_dir
    expected = directory_digest(
        [("sum.txt", 2, hashlib.sha256(b"10").hexdigest()), ("tag.txt", 5, hashlib.sha256(b"tag-5").hexdigest())]
    )
    assert (report.size_bytes, report.sha256) == expected

    # Metadata: contexts, one execution per container task, INPUT and OUTPUT events.
    md = stack.metadata_stub
    run_ctx = md.GetContext(metadata_pb2.GetContextRequest(type="system.PipelineRun", name=run_id))
    pipe_ctx = md.GetContext(metadata_pb2.GetContextRequest(type="system.Pipeline", name="three-steps"))
    assert run_ctx.parent_id == pipe_ctx.id
    executions = md.GetExecutions(metadata_pb2.GetExecutionsRequest(context_id=run_ctx.id)).executions
    by_name = {e.name: e for e in executions}
    assert set(by_name) == {"produce", "consume", "wrap/summarize"}
    assert all(e.state == metadata_pb2.Execution.COMPLETE for e in executions)
    assert all(e.type == "system.ContainerExecution" for e in executions)
    assert json_format.MessageToDict(by_name["consume"].outputs) == {"total": 10}
    events = md.GetEvents(metadata_pb2.GetEventsRequest(execution_ids=[e.id for e in executions])).events
    pairs = {(e.execution_id, e.artifact_id, e.type, e.path) for e in events}
    assert (by_name["produce"].id, data.artifact_id, metadata_pb2.Event.OUTPUT, "data") in pairs
    assert (by_name["consume"].id, data.artifact_id, metadata_pb2.Event.INPUT, "data") in pairs
    assert (by_name["consume"].id, report.artifact_id, metadata_pb2.Event.OUTPUT, "report") in pairs
    assert (by_name["wrap/summarize"].id, report.artifact_id, metadata_pb2.Event.INPUT, "report") in pairs
    recorded = md.GetArtifacts(metadata_pb2.GetArtifactsRequest(ids=[data.artifact_id])).artifacts[0]
    assert (recorded.uri, recorded.sha256, recorded.size_bytes) == (data.uri, data.sha256, data.size_bytes)

    # The API peer heard about the run, ending with the final state and all tasks.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reports = stack.api.for_run(run_id)
        if reports and reports[-1].state == common_pb2.SUCCEEDED:
            break
        time.sleep(0.05)
    assert reports[-1].state == common_pb2.SUCCEEDED
    assert {t.task_id for t in reports[-1].task_details} == set(tasks)
    assert any(r.state == common_pb2.RUNNING for r in reports)


def test_failing_task_fails_the_run_with_log_tail(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    stack.start(run_id, failing_pipeline())
    status = stack.wait(run_id)
    tasks = _tasks(status)
    assert status.state == common_pb2.FAILED
    assert "boom" in status.error
    boom = tasks["boom"]
    assert boom.state == common_pb2.FAILED
    assert "exited with status 3" in boom.error
    assert "bad thing happened" in boom.log_tail and "about to fail" in boom.log_tail
    assert "after" not in tasks  # downstream of a failure never runs
    assert tasks["independent"].state == common_pb2.SUCCEEDED
    md = stack.metadata_stub
    execution = md.GetExecutions(metadata_pb2.GetExecutionsRequest(ids=[boom.execution_id])).executions[0]
    assert execution.state == metadata_pb2.Execution.FAILED


def test_independent_tasks_run_in_parallel(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    stack.start(run_id, parallel_pipeline(seconds=1.0, width=3))
    status = stack.wait(run_id)
    assert status.state == common_pb2.SUCCEEDED, status.error
    spans = [json_format.MessageToDict(t.outputs.parameters)["span"] for t in status.task_details]
    assert len(spans) == 3
    latest_start = max(s[0] for s in spans)
    earliest_end = min(s[1] for s in spans)
    assert latest_start < earliest_end, f"tasks did not overlap: {json.dumps(spans)}"


def test_cancel_kills_running_tasks(stack: Stack) -> None:
    run_id = uuid.uuid4().hex
    stack.start(run_id, parallel_pipeline(seconds=30.0, width=2))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = stack.scheduler_stub.GetRunStatus(scheduler_pb2.GetRunStatusRequest(run_id=run_id))
        if sum(t.state == common_pb2.RUNNING for t in status.task_details) == 2:
            break
        time.sleep(0.05)
    started = time.monotonic()
    stack.scheduler_stub.CancelRun(scheduler_pb2.CancelRunRequest(run_id=run_id))
    status = stack.wait(run_id, timeout=20)
    assert status.state == common_pb2.CANCELED
    assert time.monotonic() - started < 10
    assert all(t.state == common_pb2.CANCELED for t in status.task_details)
