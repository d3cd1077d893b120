"""The service layer directly, on both databases: races and statement counts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from stepwell_metadata.app import MetadataApp
from stepwell_metadata.domain import (
    ArtifactBinding,
    EventType,
    NewArtifact,
    NewContext,
    NewExecution,
)
from stepwell_metadata.repository import MetadataRepository


def test_context_created_concurrently_is_read_back(
    app: MetadataApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between our look-up and our insert another caller creates the context: we return theirs."""
    theirs = app.service.get_or_create_context(NewContext(type="system.PipelineRun", name="r1"))
    real_find = MetadataRepository.find_context
    calls: list[str] = []

    def find_missing_once(self: MetadataRepository, type_: str, name: str) -> Any:
        calls.append(name)
        return None if len(calls) == 1 else real_find(self, type_, name)

    monkeypatch.setattr(MetadataRepository, "find_context", find_missing_once)
    ours = app.service.get_or_create_context(NewContext(type="system.PipelineRun", name="r1"))
    assert ours.id == theirs.id
    assert len(calls) == 2  # the insert hit the unique constraint, and the retry read it


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


@pytest.mark.parametrize("rows", [2, 40])
def test_lists_take_a_fixed_number_of_statements(app: MetadataApp, rows: int) -> None:
    svc = app.service
    run = svc.get_or_create_context(NewContext(type="system.PipelineRun", name=f"run-{rows}"))
    pipeline = svc.get_or_create_context(NewContext(type="system.Pipeline", name=f"p-{rows}"))
    executions = [
        svc.create_execution(
            NewExecution(
                type="system.ContainerExecution", name=f"t{i}", context_ids=[run.id, pipeline.id]
            )
        )
        for i in range(rows)
    ]
    artifacts = svc.record_artifacts(
        executions[0].id,
        EventType.OUTPUT,
        [
            ArtifactBinding(NewArtifact(type="system.Dataset", uri=f"/a/{i}", name="out"), index=i)
            for i in range(rows)
        ],
        context_ids=[run.id, pipeline.id],
    )
    svc.record_artifacts(
        executions[1].id,
        EventType.INPUT,
        [
            ArtifactBinding(NewArtifact(id=a.id), path="in", index=i)
            for i, a in enumerate(artifacts)
        ],
    )

    with count_statements(app) as statements:
        found = svc.get_executions(context_id=run.id)
        after_executions = len(statements)
        found_artifacts = svc.get_artifacts(context_id=run.id)
        after_artifacts = len(statements)
        events = svc.get_events(execution_ids=[ex.id for ex in executions])
        after_events = len(statements)
        lineage = svc.get_artifact_lineage(artifacts[0].id)
        after_lineage = len(statements)

    assert len(found) == rows
    assert all(sorted(e.context_ids) == sorted([run.id, pipeline.id]) for e in found)
    assert len(found_artifacts) == rows
    assert len(events) == 2 * rows
    assert lineage.producer is not None
    assert lineage.producer.id == executions[0].id
    assert [c.id for c in lineage.consumers] == [executions[1].id]
    # Two statements per list (rows, then their context links), whatever the row count,
    # plus transaction bookkeeping that does not depend on it either.
    assert after_executions <= 3
    assert after_artifacts - after_executions <= 3
    assert after_events - after_artifacts <= 2
    assert after_lineage - after_events <= 6
