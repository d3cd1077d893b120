"""CreateExecutions and FinishExecutions, and the scheduler's client for them, over gRPC
against real databases (SQLite and Postgres)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from stepwell.v1 import metadata_pb2 as pb
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.models import (
    ArtifactRow,
    AssociationRow,
    AttributionRow,
    EventRow,
    ExecutionRow,
)
from stepwell_scheduler.metadata_client import ExecutionEnd, ExecutionStart, MetadataClient
from tests.integration.metadata.helpers import Stub, run_context, struct, unique

MISSING = 987654321






@pytest.fixture(scope="module")
def client(metadata_app: MetadataApp) -> Iterator[MetadataClient]:
    """The scheduler's metadata client connected to :func:`metadata_app`."""
    server = metadata_app.server
    assert server is not None
    c = MetadataClient(lambda: server.address)
    yield c
    c.close()



def container(name: str, *context_ids: int, **kwargs: Any) -> pb.Execution:
    return pb.Execution(
        type="system.ContainerExecution", name=name, context_ids=list(context_ids), **kwargs
    )


def produce(stub: Stub, ctx: pb.Context, *uris: str) -> list[pb.Artifact]:
    """Artifacts output by a fresh execution of ``ctx``, one per uri."""
    producer = stub.CreateExecution(pb.CreateExecutionRequest(execution=container("p", ctx.id)))
    return list(
        stub.RecordArtifacts(
            pb.RecordArtifactsRequest(
                execution_id=producer.id,
                event_type=pb.Event.OUTPUT,
                context_ids=[ctx.id],
                artifacts=[
                    pb.ArtifactAndEvent(
                        artifact=pb.Artifact(type="system.Dataset", uri=uri, name="out"), index=i
                    )
                    for i, uri in enumerate(uris)
                ],
            )
        ).artifacts
    )


def output(uri: str, name: str, index: int = 0, **kwargs: Any) -> pb.ArtifactAndEvent:
    return pb.ArtifactAndEvent(
        artifact=pb.Artifact(type="system.Model", uri=uri, name=name, **kwargs),
        path=name,
        index=index,
    )


def events_of(stub: Stub, *execution_ids: int) -> list[tuple[int, int, int, str, int]]:
    events = stub.GetEvents(pb.GetEventsRequest(execution_ids=list(execution_ids))).events
    return [(e.execution_id, e.artifact_id, e.type, e.path, e.index) for e in events]


def assert_code(code: grpc.StatusCode, call: Callable[[], Any], *words: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() == code, err.details()  # type: ignore[attr-defined]
    details: str = err.details()  # type: ignore[attr-defined]
    for word in words:
        assert word in details, details
    return details


# -- CreateExecutions ----------------------------------------------------------------------


def test_create_executions_with_input_events(stub: Stub) -> None:
    run = run_context(stub)
    data, model_a, model_b = produce(stub, run, "/d", "/m/a", "/m/b")

    created = stub.CreateExecutions(
        pb.CreateExecutionsRequest(
            executions=[
                pb.NewExecution(
                    execution=container(
                        "train", run.id, inputs=struct(lr=0.1), custom_properties=struct(a=1)
                    ),
                    input_events=[
                        pb.Event(artifact_id=data.id, type=pb.Event.INPUT, path="data"),
                        pb.Event(artifact_id=model_a.id, type=pb.Event.INPUT, path="models"),
                        # An unset type is INPUT: the field holds nothing else.
                        pb.Event(artifact_id=model_b.id, path="models", index=1),
                    ],
                ),
                pb.NewExecution(execution=container("no-inputs", run.id)),
                pb.NewExecution(
                    execution=container("cached", run.id, state=pb.Execution.CACHED),
                    input_events=[pb.Event(artifact_id=data.id, path="data")],
                ),
            ]
        )
    ).executions

    assert [e.name for e in created] == ["train", "no-inputs", "cached"]
    ids = [e.id for e in created]
    assert ids == sorted(ids)
    assert [e.state for e in created] == [
        pb.Execution.RUNNING,
        pb.Execution.RUNNING,
        pb.Execution.CACHED,
    ]
    assert all(list(e.context_ids) == [run.id] for e in created)
    assert dict(created[0].inputs) == {"lr": 0.1}
    assert dict(created[0].custom_properties) == {"a": 1}
    assert created[0].create_time.seconds > 0

    assert events_of(stub, *ids) == [
        (ids[0], data.id, pb.Event.INPUT, "data", 0),
        (ids[0], model_a.id, pb.Event.INPUT, "models", 0),
        (ids[0], model_b.id, pb.Event.INPUT, "models", 1),
        (ids[2], data.id, pb.Event.INPUT, "data", 0),
    ]
    in_run = stub.GetExecutions(pb.GetExecutionsRequest(context_id=run.id)).executions
    assert [e.id for e in in_run][-3:] == ids
    lineage = stub.GetArtifactLineage(pb.GetArtifactLineageRequest(artifact_id=data.id))
    assert [e.id for e in lineage.consumers] == [ids[0], ids[2]]


def test_empty_batches_write_nothing(stub: Stub, counts: Callable[[], dict[str, int]]) -> None:
    before = counts()
    assert list(stub.CreateExecutions(pb.CreateExecutionsRequest()).executions) == []
    assert list(stub.FinishExecutions(pb.FinishExecutionsRequest()).results) == []
    assert counts() == before


def test_bad_new_execution_rejects_the_batch(
    stub: Stub, counts: Callable[[], dict[str, int]]
) -> None:
    run = run_context(stub)
    (data,) = produce(stub, run, "/in")
    before = counts()
    good = pb.NewExecution(
        execution=container("good", run.id),
        input_events=[pb.Event(artifact_id=data.id, type=pb.Event.INPUT, path="in")],
    )

    def create(*bad: pb.NewExecution) -> Callable[[], Any]:
        return lambda: stub.CreateExecutions(pb.CreateExecutionsRequest(executions=[good, *bad]))

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    missing = grpc.StatusCode.NOT_FOUND
    assert_code(
        missing,
        create(pb.NewExecution(execution=container("x", run.id, MISSING))),
        "executions[1].execution.context_ids",
        str(MISSING),
    )
    assert_code(
        missing,
        create(
            pb.NewExecution(
                execution=container("x", run.id),
                input_events=[
                    pb.Event(artifact_id=data.id, path="ok"),
                    pb.Event(artifact_id=MISSING, path="in"),
                ],
            )
        ),
        "executions[1].input_events[1].artifact_id",
        str(MISSING),
    )
    assert_code(
        invalid,
        create(good, pb.NewExecution(execution=pb.Execution(name="no-type"))),
        "executions[2].execution.type",
    )
    assert_code(
        invalid,
        create(pb.NewExecution(execution=container("x", run.id, state=42))),  # type: ignore[arg-type]
        "executions[1].execution.state",
    )
    assert_code(
        invalid,
        create(pb.NewExecution(execution=container("x", 0))),
        "executions[1].execution.context_ids",
    )
    assert_code(
        invalid,
        create(
            pb.NewExecution(
                execution=container("x"),
                input_events=[pb.Event(artifact_id=data.id, type=pb.Event.OUTPUT, path="in")],
            )
        ),
        "executions[1].input_events[0].type",
        "INPUT",
    )
    assert_code(
        invalid,
        create(
            pb.NewExecution(
                execution=container("x"),
                input_events=[pb.Event(execution_id=5, artifact_id=data.id, path="in")],
            )
        ),
        "executions[1].input_events[0].execution_id",
    )
    assert_code(
        invalid,
        create(
            pb.NewExecution(execution=container("x"), input_events=[pb.Event(artifact_id=data.id)])
        ),
        "executions[1].input_events[0].path",
    )
    assert_code(
        invalid,
        create(
            pb.NewExecution(
                execution=container("x"),
                input_events=[pb.Event(artifact_id=data.id, path="in", index=-1)],
            )
        ),
        "executions[1].input_events[0].index",
    )
    assert counts() == before


# -- FinishExecutions ----------------------------------------------------------------------


def test_finish_records_artifacts_events_state_and_outputs(stub: Stub) -> None:
    pipeline = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(type="system.Pipeline", name=unique("p"))
    )
    run = run_context(stub)
    a, b, c = stub.CreateExecutions(
        pb.CreateExecutionsRequest(
            executions=[
                pb.NewExecution(
                    execution=container(n, run.id, custom_properties=struct(task_name=n))
                )
                for n in ("a", "b", "c")
            ]
        )
    ).executions

    results = stub.FinishExecutions(
        pb.FinishExecutionsRequest(
            executions=[
                pb.FinishedExecution(
                    update=pb.UpdateExecutionRequest(
                        id=a.id,
                        state=pb.Execution.COMPLETE,
                        outputs=struct(accuracy=0.9),
                        custom_properties=struct(pod="a-1"),
                    ),
                    # Given out of (path, index) order: the reply follows the events' order.
                    outputs=[
                        output("/a/model", "model", metadata=struct(k="v"), sha256="AB" * 32),
                        output("/a/parts/1", "parts", 1),
                        output("/a/parts/0", "parts", 0, size_bytes=12),
                        output("/a/metrics", "metrics"),
                    ],
                    context_ids=[run.id, pipeline.id],
                ),
                pb.FinishedExecution(
                    update=pb.UpdateExecutionRequest(id=b.id, state=pb.Execution.FAILED),
                ),
                pb.FinishedExecution(
                    update=pb.UpdateExecutionRequest(id=c.id, state=pb.Execution.COMPLETE),
                    outputs=[output("/c/model", "model")],
                    context_ids=[run.id],
                ),
            ]
        )
    ).results

    assert len(results) == 3
    arts_a = list(results[0].artifacts)
    assert [x.uri for x in arts_a] == ["/a/metrics", "/a/model", "/a/parts/0", "/a/parts/1"]
    assert all(sorted(x.context_ids) == sorted([run.id, pipeline.id]) for x in arts_a)
    assert arts_a[1].sha256 == "ab" * 32
    assert dict(arts_a[1].metadata) == {"k": "v"}
    assert arts_a[2].size_bytes == 12
    assert arts_a[1].type == "system.Model"
    assert list(results[1].artifacts) == []
    (model_c,) = results[2].artifacts
    assert model_c.uri == "/c/model"
    assert list(model_c.context_ids) == [run.id]

    by_uri = {x.uri: x.id for x in arts_a}
    assert sorted(events_of(stub, a.id), key=lambda e: e[1]) == sorted(
        [
            (a.id, by_uri["/a/model"], pb.Event.OUTPUT, "model", 0),
            (a.id, by_uri["/a/parts/1"], pb.Event.OUTPUT, "parts", 1),
            (a.id, by_uri["/a/parts/0"], pb.Event.OUTPUT, "parts", 0),
            (a.id, by_uri["/a/metrics"], pb.Event.OUTPUT, "metrics", 0),
        ],
        key=lambda e: e[1],
    )
    assert events_of(stub, b.id) == []
    assert events_of(stub, c.id) == [(c.id, model_c.id, pb.Event.OUTPUT, "model", 0)]

    found = {
        e.id: e
        for e in stub.GetExecutions(pb.GetExecutionsRequest(ids=[a.id, b.id, c.id])).executions
    }
    assert found[a.id].state == pb.Execution.COMPLETE
    assert dict(found[a.id].outputs) == {"accuracy": 0.9}
    assert dict(found[a.id].custom_properties) == {"task_name": "a", "pod": "a-1"}
    assert found[a.id].update_time.ToDatetime() >= a.update_time.ToDatetime()
    assert found[b.id].state == pb.Execution.FAILED
    assert dict(found[b.id].custom_properties) == {"task_name": "b"}
    assert found[c.id].state == pb.Execution.COMPLETE
    lineage = stub.GetArtifactLineage(pb.GetArtifactLineageRequest(artifact_id=model_c.id))
    assert lineage.producer.id == c.id


def test_finishing_again_records_nothing_twice(
    stub: Stub, counts: Callable[[], dict[str, int]]
) -> None:
    run = run_context(stub)
    a, b = stub.CreateExecutions(
        pb.CreateExecutionsRequest(
            executions=[pb.NewExecution(execution=container(n, run.id)) for n in ("a", "b")]
        )
    ).executions
    # b's outputs were recorded by the single call (a scheduler killed before it finished).
    (recorded_b,) = stub.RecordArtifacts(
        pb.RecordArtifactsRequest(
            execution_id=b.id,
            event_type=pb.Event.OUTPUT,
            context_ids=[run.id],
            artifacts=[output("/b/model", "model")],
        )
    ).artifacts

    def finish(uri_suffix: str, state: int) -> list[list[pb.Artifact]]:
        reply = stub.FinishExecutions(
            pb.FinishExecutionsRequest(
                executions=[
                    pb.FinishedExecution(
                        update=pb.UpdateExecutionRequest(
                            id=ex.id,
                            state=state,
                            outputs=struct(n=1),  # type: ignore[arg-type]
                        ),
                        outputs=[
                            output(f"/{ex.name}/model{uri_suffix}", "model"),
                            output(f"/{ex.name}/extra{uri_suffix}", "extra"),
                        ],
                        context_ids=[run.id],
                    )
                    for ex in (a, b)
                ]
            )
        )
        return [list(r.artifacts) for r in reply.results]

    first = finish("", pb.Execution.COMPLETE)
    assert [x.uri for x in first[0]] == ["/a/extra", "/a/model"]
    # b keeps what was recorded for it; the artifacts in this request are not recorded.
    assert [x.id for x in first[1]] == [recorded_b.id]
    after_first = counts()

    again = finish("", pb.Execution.COMPLETE)
    assert again == first
    different = finish("-retry", pb.Execution.COMPLETE)
    assert [[x.id for x in r] for r in different] == [[x.id for x in r] for r in first]
    assert counts() == after_first
    assert len(events_of(stub, a.id)) == 2
    assert len(events_of(stub, b.id)) == 1

    # The state may still change (the same final state twice, or a correction).
    finish("", pb.Execution.FAILED)
    (ex_a,) = stub.GetExecutions(pb.GetExecutionsRequest(ids=[a.id])).executions
    assert ex_a.state == pb.Execution.FAILED
    assert counts() == after_first


def test_concurrent_finishes_record_once(stub: Stub, counts: Callable[[], dict[str, int]]) -> None:
    run = run_context(stub)
    (ex,) = stub.CreateExecutions(
        pb.CreateExecutionsRequest(executions=[pb.NewExecution(execution=container("a", run.id))])
    ).executions
    request = pb.FinishExecutionsRequest(
        executions=[
            pb.FinishedExecution(
                update=pb.UpdateExecutionRequest(id=ex.id, state=pb.Execution.COMPLETE),
                outputs=[output(f"/race/{i}", "out", i) for i in range(3)],
                context_ids=[run.id],
            )
        ]
    )
    before = counts()
    barrier = threading.Barrier(6)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def finish() -> None:
        try:
            barrier.wait()
            (result,) = stub.FinishExecutions(request).results
            results.append([x.id for x in result.artifacts])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=finish) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 6
    assert all(r == results[0] for r in results)
    after = counts()
    assert after["md_artifacts"] - before["md_artifacts"] == 3
    assert after["md_events"] - before["md_events"] == 3


def test_bad_finish_rejects_the_batch(stub: Stub, counts: Callable[[], dict[str, int]]) -> None:
    run = run_context(stub)
    (data,) = produce(stub, run, "/bad/in")
    good_ex, other = stub.CreateExecutions(
        pb.CreateExecutionsRequest(
            executions=[pb.NewExecution(execution=container(n, run.id)) for n in ("g", "o")]
        )
    ).executions
    before = counts()
    good = pb.FinishedExecution(
        update=pb.UpdateExecutionRequest(
            id=good_ex.id, state=pb.Execution.COMPLETE, outputs=struct(x=1)
        ),
        outputs=[output("/bad/good", "model")],
        context_ids=[run.id],
    )

    def finish(*bad: pb.FinishedExecution) -> Callable[[], Any]:
        return lambda: stub.FinishExecutions(pb.FinishExecutionsRequest(executions=[good, *bad]))

    def ended(**kwargs: Any) -> pb.FinishedExecution:
        update = {"id": other.id, "state": pb.Execution.COMPLETE, **kwargs.pop("update", {})}
        return pb.FinishedExecution(update=pb.UpdateExecutionRequest(**update), **kwargs)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    missing = grpc.StatusCode.NOT_FOUND
    assert_code(
        missing, finish(ended(update={"id": MISSING})), "executions[1].update.id", str(MISSING)
    )
    assert_code(invalid, finish(ended(update={"id": 0})), "executions[1].update.id")
    assert_code(
        invalid,
        finish(ended(update={"state": pb.Execution.STATE_UNSPECIFIED})),
        "executions[1].update.state",
        "required",
    )
    assert_code(invalid, finish(ended(update={"state": 42})), "executions[1].update.state")
    assert_code(
        invalid,
        finish(ended(update={"id": good_ex.id})),
        "executions[1].update.id",
        "executions[0]",
    )
    assert_code(
        invalid,
        finish(ended(outputs=[output("/ok", "ok"), output("", "no-uri")])),
        "executions[1].outputs[1].artifact.uri",
    )
    assert_code(
        invalid,
        finish(ended(outputs=[output("/x", "x", sha256="zz")])),
        "executions[1].outputs[0].artifact.sha256",
    )
    assert_code(
        missing,
        finish(ended(outputs=[output("/x", "x")], context_ids=[run.id, MISSING])),
        "executions[1].context_ids",
        str(MISSING),
    )
    assert_code(
        missing,
        finish(
            ended(
                outputs=[pb.ArtifactAndEvent(artifact=pb.Artifact(id=MISSING), path="p")],
            )
        ),
        "executions[1].outputs[].artifact.id",
        str(MISSING),
    )
    assert counts() == before
    # The good item was not applied either.
    (still,) = stub.GetExecutions(pb.GetExecutionsRequest(ids=[good_ex.id])).executions
    assert still.state == pb.Execution.RUNNING
    assert dict(still.outputs) == {}
    assert events_of(stub, good_ex.id) == []
    # Linking an existing artifact as an output is fine.
    (linked,) = stub.FinishExecutions(
        pb.FinishExecutionsRequest(
            executions=[
                ended(outputs=[pb.ArtifactAndEvent(artifact=pb.Artifact(id=data.id), path="p")])
            ]
        )
    ).results
    assert [x.id for x in linked.artifacts] == [data.id]


@contextlib.contextmanager
def count_statements(app: MetadataApp) -> Iterator[list[str]]:
    """Collects the SQL statements the app's engine runs inside the block."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(app.database.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(app.database.engine, "before_cursor_execute", record)


def test_batches_take_a_fixed_number_of_statements(stub: Stub, metadata_app: MetadataApp) -> None:
    run = run_context(stub)
    (data,) = produce(stub, run, "/fixed/in")

    def batch(size: int) -> tuple[list[str], list[str]]:
        with count_statements(metadata_app) as statements:
            created = stub.CreateExecutions(
                pb.CreateExecutionsRequest(
                    executions=[
                        pb.NewExecution(
                            execution=container(f"t{i}", run.id),
                            input_events=[pb.Event(artifact_id=data.id, path="in")],
                        )
                        for i in range(size)
                    ]
                )
            ).executions
            creating = list(statements)
            stub.FinishExecutions(
                pb.FinishExecutionsRequest(
                    executions=[
                        pb.FinishedExecution(
                            update=pb.UpdateExecutionRequest(id=ex.id, state=pb.Execution.COMPLETE),
                            outputs=[output(f"/fixed/{ex.id}/{j}", "out", j) for j in range(2)],
                            context_ids=[run.id],
                        )
                        for ex in created
                    ]
                )
            )
            return creating, statements[len(creating) :]

    def per_batch(statements: list[str]) -> list[str]:
        # SQLite cannot return the ids of a many-row insert in row order, so SQLAlchemy
        # inserts executions and artifacts one by one there (in-process, no round trip).
        per_row = ("INSERT INTO md_executions", "INSERT INTO md_artifacts")
        if metadata_app.database.url.startswith("sqlite"):
            return [s for s in statements if not s.startswith(per_row)]
        return statements

    small, large = batch(2), batch(20)
    assert len(per_batch(large[0])) == len(per_batch(small[0]))
    assert len(per_batch(large[1])) == len(per_batch(small[1]))


# -- the scheduler's client ------------------------------------------------------------------


def table_rows(engine: Engine, run_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """What is stored for the executions of a run context, without ids and times."""
    with Session(engine) as session:
        execution_ids = list(
            session.scalars(
                select(AssociationRow.execution_id).where(AssociationRow.context_id == run_id)
            )
        )
        executions = {
            row.id: row
            for row in session.scalars(
                select(ExecutionRow).where(ExecutionRow.id.in_(execution_ids))
            )
        }
        events = list(
            session.scalars(select(EventRow).where(EventRow.execution_id.in_(execution_ids)))
        )
        artifact_ids = {e.artifact_id for e in events}
        artifacts = {
            row.id: row
            for row in session.scalars(select(ArtifactRow).where(ArtifactRow.id.in_(artifact_ids)))
        }
        attributions = list(
            session.scalars(
                select(AttributionRow).where(AttributionRow.artifact_id.in_(artifact_ids))
            )
        )
        associations = list(
            session.scalars(
                select(AssociationRow).where(AssociationRow.execution_id.in_(execution_ids))
            )
        )

    def execution(i: int) -> tuple[Any, ...]:
        row = executions[i]
        return (
            row.type,
            row.name,
            row.state,
            sorted(row.inputs.items()),
            sorted(row.outputs.items()),
            sorted(row.custom_properties.items()),
        )

    def artifact(i: int) -> tuple[Any, ...]:
        row = artifacts[i]
        return (
            row.type,
            row.uri,
            row.name,
            sorted(row.artifact_metadata.items()),
            row.size_bytes,
            row.sha256,
        )

    def context(c: int) -> str:
        return "this run" if c == run_id else str(c)

    return {
        "executions": sorted(execution(i) for i in executions),
        "events": sorted(
            (execution(e.execution_id), artifact(e.artifact_id), e.type, e.path, e.index)
            for e in events
        ),
        # The input artifact's attributions are the producer's, not the tasks'.
        "attributions": sorted(
            (context(a.context_id), artifact(a.artifact_id))
            for a in attributions
            if a.artifact_id in artifacts and artifacts[a.artifact_id].uri != "/client/in"
        ),
        "associations": sorted(
            (context(a.context_id), execution(a.execution_id)) for a in associations
        ),
    }


def test_client_batches_store_what_the_single_calls_store(
    stub: Stub, client: MetadataClient, engine: Engine
) -> None:
    pipeline = stub.GetOrCreateContext(
        pb.GetOrCreateContextRequest(type="system.Pipeline", name=unique("p"))
    )
    shared = run_context(stub)
    (data,) = produce(stub, shared, "/client/in")
    single_run, batch_run = run_context(stub), run_context(stub)

    def starts(run: pb.Context) -> list[ExecutionStart]:
        return [
            ExecutionStart(
                execution_type="system.ContainerExecution",
                name=f"task-{i}",
                context_ids=[pipeline.id, run.id, 0],
                inputs={"i": i, "s": "x"},
                custom_properties={"attempt": 0, "run_id": "r", "task_name": f"task-{i}"},
                input_artifacts={
                    "data": [{"artifact_id": data.id, "uri": "/client/in"}],
                    "many": [{"uri": "/not-recorded"}, {"artifact_id": data.id}],
                },
            )
            for i in range(3)
        ]

    def ends(ids: list[int], run: pb.Context) -> list[ExecutionEnd]:
        return [
            ExecutionEnd(
                execution_id=ids[0],
                state="SUCCEEDED",
                parameters={"out": 1.5},
                artifacts={
                    "model": [
                        {
                            "uri": "/client/model",
                            "schema_title": "system.Model",
                            "metadata": {"framework": "x"},
                            "size": 10,
                            "sha256": "0" * 64,
                        }
                    ],
                    "parts": [{"uri": f"/client/p{j}"} for j in range(3)],
                },
                context_ids=[pipeline.id, run.id, 0],
            ),
            ExecutionEnd(execution_id=ids[1], state="FAILED", parameters={}),
            ExecutionEnd(
                execution_id=ids[2], state="CANCELED", parameters={}, custom={"error": "stop"}
            ),
        ]

    single_ids = []
    for start in starts(single_run):
        execution_id = client.start_execution(
            execution_type=start.execution_type,
            name=start.name,
            context_ids=start.context_ids,
            inputs=start.inputs,
            custom_properties=start.custom_properties,
        )
        client.record_inputs(execution_id, start.input_artifacts)
        single_ids.append(execution_id)
    single_outputs = []
    for end in ends(single_ids, single_run):
        single_outputs.append(
            client.record_outputs(end.execution_id, end.artifacts, end.context_ids)
            if end.artifacts
            else {}
        )
        client.finish_execution(end.execution_id, end.state, end.parameters, **end.custom)

    batch_ids = client.start_executions(starts(batch_run))
    assert len(batch_ids) == 3
    assert batch_ids == sorted(batch_ids)
    batch_outputs = client.finish_executions(ends(batch_ids, batch_run))

    single_rows, batch_rows = table_rows(engine, single_run.id), table_rows(engine, batch_run.id)
    assert batch_rows == single_rows
    assert len(batch_rows["executions"]) == 3
    assert len(batch_rows["associations"]) == 3 * 2
    # Two INPUT events per task (the record without an artifact_id has none), four OUTPUT.
    assert len(batch_rows["events"]) == 3 * 2 + 4
    assert len(batch_rows["attributions"]) == 4 * 2
    assert batch_outputs[1:] == single_outputs[1:] == [{}, {}]
    assert {k: len(v) for k, v in batch_outputs[0].items()} == {"model": 1, "parts": 3}

    # Artifact ids come back by output name, in record order.
    uris = {
        a.id: a.uri
        for a in stub.GetArtifacts(
            pb.GetArtifactsRequest(ids=[i for ids in batch_outputs[0].values() for i in ids])
        ).artifacts
    }
    assert {k: [uris[i] for i in v] for k, v in batch_outputs[0].items()} == {
        "model": ["/client/model"],
        "parts": ["/client/p0", "/client/p1", "/client/p2"],
    }


def test_client_finish_is_replay_safe(stub: Stub, client: MetadataClient) -> None:
    run = run_context(stub)
    assert client.start_executions([]) == []
    assert client.finish_executions([]) == []
    (a, b) = client.start_executions(
        [
            ExecutionStart("system.ContainerExecution", n, [run.id], {}, {"task_name": n})
            for n in ("a", "b")
        ]
    )
    artifacts: dict[str, list[Mapping[str, Any]]] = {
        "z_last": [{"uri": "/replay/z"}],
        "a_first": [{"uri": f"/replay/a{j}"} for j in range(2)],
    }
    # b was harvested before by a killed scheduler with the single call.
    recorded_b = client.record_outputs(b, artifacts, [run.id])

    ends = [ExecutionEnd(ex, "SUCCEEDED", {"p": 1}, artifacts, [run.id]) for ex in (a, b)]
    first = client.finish_executions(ends)
    assert first[1] == recorded_b
    assert client.finish_executions(ends) == first
    assert client.recorded_outputs(a) == first[0]
    assert {k: len(v) for k, v in first[0].items()} == {"a_first": 2, "z_last": 1}

    # Outputs recorded before but not given now (a failed end): named after each artifact.
    (failed,) = client.finish_executions([ExecutionEnd(a, "FAILED", {})])
    assert failed == first[0]
    (ex_a,) = stub.GetExecutions(pb.GetExecutionsRequest(ids=[a])).executions
    assert ex_a.state == pb.Execution.FAILED
    assert json_format.MessageToDict(ex_a.outputs) == {}

    with pytest.raises(ValueError, match="PENDING"):
        client.finish_executions([ExecutionEnd(a, "PENDING", {})])
