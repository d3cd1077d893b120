"""The metadata service over gRPC against real databases (SQLite and Postgres)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from stepwell.v1 import metadata_pb2 as pb
from tests.integration.metadata.helpers import Stub, run_context, struct, unique


def new_execution(stub: Stub, ctx: pb.Context, name: str, **kwargs: Any) -> pb.Execution:
    return stub.CreateExecution(
        pb.CreateExecutionRequest(
            execution=pb.Execution(
                type="system.ContainerExecution", name=name, context_ids=[ctx.id], **kwargs
            )
        )
    )


def assert_code(code: grpc.StatusCode, call: Callable[[], Any], *words: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() == code, err.details()  # type: ignore[attr-defined]
    details: str = err.details()  # type: ignore[attr-defined]
    for word in words:
        assert word in details
    return details


# -- contexts --------------------------------------------------------------------------


def test_get_or_create_context_is_idempotent(stub: Stub) -> None:
    name = unique("pipeline")
    first = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(
            type="system.Pipeline", name=name, custom_properties=struct(a="x")
        )
    )
    again = stub.GetOrCreateContext(pb.GetOrCreateContextRequest(type="system.Pipeline", name=name))
    assert first.id > 0
    assert again.id == first.id
    assert dict(again.custom_properties) == {"a": "x"}
    assert first.create_time.seconds > 0

    same_name_other_type = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(type="system.PipelineRun", name=name)
    )
    assert same_name_other_type.id != first.id

    got = stub.GetContext(pb.GetContextRequest(type="system.Pipeline", name=name))
    assert got.id == first.id


def test_get_or_create_context_under_concurrency(stub: Stub) -> None:
    name = unique("race")
    ids: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        try:
            barrier.wait()
            ids.append(
                stub.GetOrCreateContext(
                    pb.GetOrCreateContextRequest(type="system.PipelineRun", name=name)
                ).id
            )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ids) == 8
    assert len(set(ids)) == 1


def test_context_parent(stub: Stub) -> None:
    parent = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(type="system.Pipeline", name=unique("p"))
    )
    child = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(
            type="system.PipelineRun", name=unique("r"), parent_id=parent.id
        )
    )
    assert child.parent_id == parent.id
    assert parent.parent_id == 0


def test_context_bad_input(stub: Stub, counts: Callable[[], dict[str, int]]) -> None:
    before = counts()
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.GetOrCreateContext(pb.GetOrCreateContextRequest(type="", name="x")),
        "type",
    )
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.GetOrCreateContext(
            pb.GetOrCreateContextRequest(type="system.Pipeline", name="")
        ),
        "name",
    )
    assert_code(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetOrCreateContext(
            pb.GetOrCreateContextRequest(
                type="system.Pipeline", name=unique("p"), parent_id=987654321
            )
        ),
        "parent_id",
    )
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.GetOrCreateContext(
            pb.GetOrCreateContextRequest(type="system.Pipeline", name="n" * 2000)
        ),
        "name",
        "1024",
    )
    assert_code(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.GetContext(
            pb.GetContextRequest(type="system.Pipeline", name=unique("missing"))
        ),
    )
    assert counts() == before


# -- executions ------------------------------------------------------------------------


def test_create_update_and_get_executions(stub: Stub) -> None:
    pipeline = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(type="system.Pipeline", name=unique("p"))
    )
    run = run_context(stub)
    created = stub.CreateExecution(
        pb.CreateExecutionRequest(
            execution=pb.Execution(
                type="system.ContainerExecution",
                name="train",
                context_ids=[run.id, pipeline.id],
                inputs=struct(lr=0.1, epochs=3),
                custom_properties=struct(
                    display_name="train", task_name="train", image="python:3.11"
                ),
            )
        )
    )
    assert created.id > 0
    assert created.state == pb.Execution.RUNNING  # unspecified means RUNNING, as KFP creates them
    assert sorted(created.context_ids) == sorted([run.id, pipeline.id])
    assert dict(created.inputs) == {"lr": 0.1, "epochs": 3}

    updated = stub.UpdateExecution(
        pb.UpdateExecutionRequest(
            id=created.id,
            state=pb.Execution.COMPLETE,
            outputs=struct(accuracy=0.93),
            custom_properties=struct(pod_name="train-abc", image="python:3.12"),
        )
    )
    assert updated.state == pb.Execution.COMPLETE
    assert dict(updated.outputs) == {"accuracy": 0.93}
    assert dict(updated.custom_properties) == {
        "display_name": "train",
        "task_name": "train",
        "image": "python:3.12",
        "pod_name": "train-abc",
    }
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()
    assert sorted(updated.context_ids) == sorted([run.id, pipeline.id])

    # An update without a state or outputs leaves them as they are.
    again = stub.UpdateExecution(
        pb.UpdateExecutionRequest(id=created.id, custom_properties=struct(x=1))
    )
    assert again.state == pb.Execution.COMPLETE
    assert dict(again.outputs) == {"accuracy": 0.93}

    other = new_execution(stub, run, "eval", state=pb.Execution.CACHED)
    assert other.state == pb.Execution.CACHED
    in_run = stub.GetExecutions(pb.GetExecutionsRequest(context_id=run.id)).executions
    assert [e.id for e in in_run] == [created.id, other.id]
    assert in_run[0].custom_properties["x"] == 1
    in_pipeline = stub.GetExecutions(pb.GetExecutionsRequest(context_id=pipeline.id)).executions
    assert [e.id for e in in_pipeline] == [created.id]
    by_ids = stub.GetExecutions(
        pb.GetExecutionsRequest(ids=[other.id, created.id, 987654321])
    ).executions
    assert [e.id for e in by_ids] == [created.id, other.id]
    both = stub.GetExecutions(
        pb.GetExecutionsRequest(context_id=pipeline.id, ids=[other.id])
    ).executions
    assert list(both) == []


def test_execution_bad_input(stub: Stub, counts: Callable[[], dict[str, int]]) -> None:
    run = run_context(stub)
    before = counts()
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateExecution(pb.CreateExecutionRequest(execution=pb.Execution(name="x"))),
        "execution.type",
    )
    assert_code(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.CreateExecution(
            pb.CreateExecutionRequest(
                execution=pb.Execution(
                    type="system.ContainerExecution", context_ids=[run.id, 987654321]
                )
            )
        ),
        "context_ids",
        "987654321",
    )
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.CreateExecution(
            pb.CreateExecutionRequest(
                execution=pb.Execution(type="system.ContainerExecution", state=42)
            )  # type: ignore[arg-type]
        ),
        "execution.state",
    )
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT, lambda: stub.GetExecutions(pb.GetExecutionsRequest())
    )
    assert_code(
        grpc.StatusCode.NOT_FOUND,
        lambda: stub.UpdateExecution(
            pb.UpdateExecutionRequest(id=987654321, state=pb.Execution.FAILED)
        ),
        "987654321",
    )
    assert_code(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stub.UpdateExecution(pb.UpdateExecutionRequest()),
        "id",
    )
    assert counts() == before


# -- artifacts, events, lineage ----------------------------------------------------------


def test_lineage_producer_and_consumers(stub: Stub) -> None:
    run = run_context(stub)
    a = new_execution(stub, run, "make-data")
    b = new_execution(stub, run, "train")
    c = new_execution(stub, run, "report")

    (x,) = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=a.id,
            event_type=pb.Event.OUTPUT,
            context_ids=[run.id],
            artifacts=[
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(
                        type="system.Dataset",
                        uri="minio://mlpipeline/v2/artifacts/x",
                        name="dataset",
                        metadata=struct(rows=100),
                        size_bytes=1234,
                        sha256="AB" * 32,
                    )
                )
            ],
        )
    ).artifacts
    assert x.id > 0
    assert x.context_ids == [run.id]
    assert x.sha256 == "ab" * 32
    assert dict(x.metadata) == {"rows": 100}

    stub.PutEvents(
        pb.PutEventsRequest(
            events=[
                pb.Event(execution_id=b.id, artifact_id=x.id, type=pb.Event.INPUT, path="data"),
                pb.Event(execution_id=c.id, artifact_id=x.id, type=pb.Event.INPUT, path="data"),
            ]
        )
    )
    lineage = stub.GetArtifactLineage(pb.GetArtifactLineageRequest(artifact_id=x.id))
    assert lineage.artifact.id == x.id
    assert lineage.artifact.uri == "minio://mlpipeline/v2/artifacts/x"
    assert lineage.HasField("producer")
    assert lineage.producer.id == a.id
    assert lineage.producer.name == "make-data"
    assert [e.id for e in lineage.consumers] == [b.id, c.id]
    assert [(e.execution_id, e.type, e.path) for e in lineage.events] == [
        (a.id, pb.Event.OUTPUT, "dataset"),
        (b.id, pb.Event.INPUT, "data"),
        (c.id, pb.Event.INPUT, "data"),
    ]

    events = stub.GetEvents(pb.GetEventsRequest(execution_ids=[a.id])).events
    assert [(e.artifact_id, e.type, e.path, e.index) for e in events] == [
        (x.id, pb.Event.OUTPUT, "dataset", 0)
    ]
    assert len(stub.GetEvents(pb.GetEventsRequest(artifact_ids=[x.id])).events) == 3
    assert (
        len(stub.GetEvents(pb.GetEventsRequest(execution_ids=[b.id], artifact_ids=[x.id])).events)
        == 1
    )

    by_context = stub.GetArtifacts(pb.GetArtifactsRequest(context_id=run.id)).artifacts
    assert [art.id for art in by_context] == [x.id]
    by_uri = stub.GetArtifacts(pb.GetArtifactsRequest(uri=x.uri)).artifacts
    assert [art.id for art in by_uri] == [x.id]


def test_imported_artifact_has_no_producer(stub: Stub) -> None:
    run = run_context(stub)
    importer = new_execution(stub, run, "importer")
    consumer = new_execution(stub, run, "use")
    # An importer links an existing artifact as its input: no OUTPUT event, so no producer.
    (art,) = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=importer.id,
            event_type=pb.Event.INPUT,
            artifacts=[
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(type="system.Model", uri="gs://b/m"), path="artifact"
                )
            ],
        )
    ).artifacts
    assert art.context_ids == []
    # Recording the same existing artifact for another execution links it, without a copy.
    (linked,) = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=consumer.id,
            event_type=pb.Event.INPUT,
            context_ids=[run.id],
            artifacts=[pb.ArtifactAndEvent(artifact=pb.Artifact(id=art.id), path="model")],
        )
    ).artifacts
    assert linked.id == art.id
    assert linked.uri == "gs://b/m"
    assert linked.context_ids == [run.id]
    lineage = stub.GetArtifactLineage(pb.GetArtifactLineageRequest(artifact_id=art.id))
    assert not lineage.HasField("producer")
    assert [e.id for e in lineage.consumers] == [importer.id, consumer.id]


def test_record_artifacts_lists_and_paths(stub: Stub) -> None:
    run = run_context(stub)
    ex = new_execution(stub, run, "split")
    recorded = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=ex.id,
            event_type=pb.Event.OUTPUT,
            context_ids=[run.id],
            artifacts=[
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(type="system.Dataset", uri=f"/tmp/part{i}", name="part"),
                    index=i,
                )
                for i in range(3)
            ]
            + [
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(type="system.Metrics", uri="/tmp/m", name="ignored"),
                    path="metrics",
                )
            ],
        )
    ).artifacts
    assert [a.uri for a in recorded] == ["/tmp/part0", "/tmp/part1", "/tmp/part2", "/tmp/m"]
    events = stub.GetEvents(pb.GetEventsRequest(execution_ids=[ex.id])).events
    assert [(e.artifact_id, e.path, e.index) for e in events] == [
        (recorded[0].id, "part", 0),
        (recorded[1].id, "part", 1),
        (recorded[2].id, "part", 2),
        (recorded[3].id, "metrics", 0),
    ]
    # Empty requests change nothing and succeed.
    assert (
        list(
            stub.RecordArtifacts(
                pb.RecordArtifactsRequest(execution_id=ex.id, event_type=pb.Event.OUTPUT)
            ).artifacts
        )
        == []
    )


def test_put_events_is_idempotent(stub: Stub, counts: Callable[[], dict[str, int]]) -> None:
    run = run_context(stub)
    a = new_execution(stub, run, "a")
    (x,) = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=a.id,
            event_type=pb.Event.OUTPUT,
            artifacts=[
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(type="system.Artifact", uri="/x", name="x")
                )
            ],
        )
    ).artifacts
    b = new_execution(stub, run, "b")
    event = pb.Event(execution_id=b.id, artifact_id=x.id, type=pb.Event.INPUT, path="in")
    stub.PutEvents(pb.PutEventsRequest(events=[event]))
    before = counts()
    stub.PutEvents(pb.PutEventsRequest(events=[event, event]))
    assert counts() == before


def test_artifact_bad_input_writes_nothing(
    stub: Stub, counts: Callable[[], dict[str, int]]
) -> None:
    run = run_context(stub)
    ex = new_execution(stub, run, "producer")
    (good,) = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=ex.id,
            event_type=pb.Event.OUTPUT,
            artifacts=[
                pb.ArtifactAndEvent(
                    artifact=pb.Artifact(type="system.Artifact", uri="/good", name="good")
                )
            ],
        )
    ).artifacts
    before = counts()
    fine = pb.ArtifactAndEvent(artifact=pb.Artifact(type="system.Dataset", uri="/ok", name="ok"))

    def record(*artifacts: pb.ArtifactAndEvent, **kwargs: Any) -> Callable[[], Any]:
        fields: dict[str, Any] = {
            "execution_id": ex.id,
            "event_type": pb.Event.OUTPUT,
            "context_ids": [run.id],
        }
        fields.update(kwargs)
        return lambda: stub.RecordArtifacts(
            pb.RecordArtifactsRequest(artifacts=list(artifacts), **fields)
        )

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    missing = grpc.StatusCode.NOT_FOUND
    assert_code(
        invalid,
        record(fine, pb.ArtifactAndEvent(artifact=pb.Artifact(type="system.Dataset", name="n"))),
        "artifacts[1].artifact.uri",
    )
    assert_code(
        invalid,
        record(pb.ArtifactAndEvent(artifact=pb.Artifact(uri="/u", name="n"))),
        "artifacts[0].artifact.type",
    )
    assert_code(
        invalid,
        record(pb.ArtifactAndEvent(artifact=pb.Artifact(type="t", uri="/u"))),
        "artifacts[0].path",
    )
    assert_code(
        invalid,
        record(
            pb.ArtifactAndEvent(artifact=pb.Artifact(type="t", uri="/u", name="n", sha256="zz"))
        ),
        "sha256",
    )
    assert_code(
        invalid,
        record(pb.ArtifactAndEvent(artifact=pb.Artifact(type="t", uri="/u", name="n"), index=-1)),
        "index",
    )
    assert_code(invalid, record(fine, event_type=pb.Event.TYPE_UNSPECIFIED), "event_type")
    assert_code(invalid, record(fine, event_type=9), "event_type")
    assert_code(invalid, record(fine, execution_id=0), "execution_id")
    assert_code(missing, record(fine, execution_id=987654321), "execution_id", "987654321")
    assert_code(missing, record(fine, context_ids=[run.id, 987654321]), "context_ids", "987654321")
    assert_code(
        missing,
        record(fine, pb.ArtifactAndEvent(artifact=pb.Artifact(id=987654321), path="p")),
        "987654321",
    )

    def put(*events: pb.Event) -> Callable[[], Any]:
        return lambda: stub.PutEvents(pb.PutEventsRequest(events=list(events)))

    ok_event = pb.Event(execution_id=ex.id, artifact_id=good.id, type=pb.Event.INPUT, path="p")
    assert_code(
        missing,
        put(
            ok_event,
            pb.Event(execution_id=ex.id, artifact_id=987654321, type=pb.Event.INPUT, path="p"),
        ),
        "artifact_id",
        "987654321",
    )
    assert_code(
        missing,
        put(
            ok_event,
            pb.Event(execution_id=987654321, artifact_id=good.id, type=pb.Event.INPUT, path="p"),
        ),
        "execution_id",
        "987654321",
    )
    assert_code(
        invalid,
        put(ok_event, pb.Event(execution_id=ex.id, artifact_id=good.id, path="p")),
        "events[1].type",
    )
    assert_code(
        invalid,
        put(pb.Event(execution_id=ex.id, artifact_id=good.id, type=pb.Event.INPUT)),
        "events[0].path",
    )

    assert_code(invalid, lambda: stub.GetArtifacts(pb.GetArtifactsRequest()))
    assert_code(invalid, lambda: stub.GetEvents(pb.GetEventsRequest()))
    assert_code(
        missing,
        lambda: stub.GetArtifactLineage(pb.GetArtifactLineageRequest(artifact_id=987654321)),
    )
    assert_code(
        invalid, lambda: stub.GetArtifactLineage(pb.GetArtifactLineageRequest()), "artifact_id"
    )
    assert counts() == before
