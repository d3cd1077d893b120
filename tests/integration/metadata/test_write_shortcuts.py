"""The shortcuts of the per-task writes (create and finish) keep their answers exact."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from stepwell.errors import NotFound
from stepwell_metadata.app import MetadataApp
from stepwell_metadata.domain import (
    ArtifactBinding,
    EventType,
    ExecutionState,
    ExecutionUpdate,
    FinishedExecution,
    NewArtifact,
    NewContext,
    NewExecution,
)
from stepwell_metadata.models import AssociationRow, ContextRow, ExecutionRow


def artifact(uri: str, name: str) -> NewArtifact:
    return NewArtifact(type="system.Artifact", uri=uri, name=name)


def test_finish_without_outputs_returns_those_recorded_before(app: MetadataApp) -> None:
    svc = app.service
    run = svc.get_or_create_context(NewContext(type="system.PipelineRun", name="r"))
    (ex,) = svc.create_executions([NewExecution(type="t", name="a", context_ids=[run.id])])
    (recorded,) = svc.record_artifacts(
        ex.id, EventType.OUTPUT, [ArtifactBinding(artifact("/a", "model"))], [run.id]
    )
    (result,) = svc.finish_executions(
        [FinishedExecution(ExecutionUpdate(id=ex.id, state=ExecutionState.COMPLETE))]
    )
    assert [a.id for a in result] == [recorded.id]
    assert result[0].context_ids == [run.id]


def test_finish_reply_matches_what_is_read_back(app: MetadataApp) -> None:
    svc = app.service
    run = svc.get_or_create_context(NewContext(type="system.PipelineRun", name="r"))
    other = svc.get_or_create_context(NewContext(type="system.Pipeline", name="p"))
    (data,) = svc.record_artifacts(
        svc.create_executions([NewExecution(type="t", name="producer")])[0].id,
        EventType.OUTPUT,
        [ArtifactBinding(artifact("/in", "data"))],
        [other.id],
    )
    a, b = svc.create_executions(
        [NewExecution(type="t", name=n, context_ids=[run.id]) for n in ("a", "b")]
    )
    finishes = [
        FinishedExecution(
            ExecutionUpdate(
                id=a.id,
                state=ExecutionState.COMPLETE,
                outputs={"n": 1},
                custom_properties={"k": "v"},
            ),
            outputs=[
                ArtifactBinding(artifact("/a/z", "z")),
                ArtifactBinding(NewArtifact(id=data.id), path="linked"),
                ArtifactBinding(artifact("/a/m1", "m"), path="m", index=1),
                ArtifactBinding(artifact("/a/m0", "m"), path="m", index=0),
            ],
            context_ids=[run.id],
        ),
        # Two outputs at the same path and index: ordered by event id.
        FinishedExecution(
            ExecutionUpdate(id=b.id, state=ExecutionState.FAILED),
            outputs=[
                ArtifactBinding(artifact("/b/2", "x")),
                ArtifactBinding(artifact("/b/1", "x")),
            ],
            context_ids=[run.id],
        ),
    ]
    first = svc.finish_executions(finishes)
    assert [x.uri for x in first[0]] == ["/in", "/a/m0", "/a/m1", "/a/z"]
    assert [x.uri for x in first[1]] == ["/b/2", "/b/1"]
    assert first[0][0].context_ids == sorted([run.id, other.id])
    # A replay answers from the database: the same artifacts, as stored.
    again = svc.finish_executions(finishes)
    assert again == first
    ex_a, ex_b = svc.get_executions(ids=[a.id, b.id])
    assert ex_a.state == ExecutionState.COMPLETE
    assert ex_a.outputs == {"n": 1}
    assert ex_a.custom_properties == {"k": "v"}
    assert ex_b.state == ExecutionState.FAILED


def test_created_executions_are_what_is_read_back(app: MetadataApp) -> None:
    svc = app.service
    run = svc.get_or_create_context(NewContext(type="system.PipelineRun", name="r"))
    created = svc.create_executions(
        [
            NewExecution(
                type="t",
                name=f"e{i}",
                context_ids=[run.id],
                inputs={"i": i},
                custom_properties={"c": [1, 2]},
            )
            for i in range(3)
        ]
    )
    assert svc.get_executions(ids=[e.id for e in created]) == created


def test_a_remembered_context_that_is_gone_is_not_found(app: MetadataApp) -> None:
    """Contexts are never deleted, but should one vanish (a restored database), the
    foreign key catches the stale id and the retry answers NOT_FOUND."""
    svc = app.service
    run = svc.get_or_create_context(NewContext(type="system.PipelineRun", name="r"))
    (ex,) = svc.create_executions([NewExecution(type="t", context_ids=[run.id])])
    with app.database.session() as session:
        session.execute(delete(AssociationRow))
        session.execute(delete(ExecutionRow))
        session.execute(delete(ContextRow))
    with pytest.raises(NotFound, match=rf"executions\[0\]\.execution\.context_ids.*{run.id}"):
        svc.create_executions([NewExecution(type="t", context_ids=[run.id])])
    with app.database.session() as session:
        assert session.query(ExecutionRow).count() == 0
    assert ex.id
